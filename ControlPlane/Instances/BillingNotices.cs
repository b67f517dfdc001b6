using Billing.Usage;
using Provisioner.Deployments;

namespace ControlPlane.Instances;

/// <summary>
/// What billing was last told about an instance, and when. A notice is due when the stored lifecycle changed, and
/// again every <see cref="Refresh"/>: the metering grain keeps the probe's credentials only in memory, so one activated
/// anew (moved to another silo) learns them again. Per activation: every activation tells billing once.
/// </summary>
public sealed class BillingNotices
{
    public static readonly TimeSpan Refresh = TimeSpan.FromMinutes(1);

    private InstanceLifecycleNotice? _told;
    private DateTimeOffset _toldAt;

    /// <summary>Billing has heard that the instance is deleted: its reminder may go.</summary>
    public bool DeletionHeard => _told?.State == MeteredState.Deleted;

    public bool IsDue(InstanceLifecycleNotice notice, DateTimeOffset now) => notice != _told || now - _toldAt >= Refresh;

    public void Told(InstanceLifecycleNotice notice, DateTimeOffset now) => (_told, _toldAt) = (notice, now);

    /// <summary>
    /// Tells billing the stored lifecycle and size when they changed or the refresh is due. Returns the failure, if any:
    /// billing must never hold up the instance, so the caller logs it and a later tick (or a deleted instance's reminder) retries.
    /// </summary>
    public async Task<Exception?> TellAsync(IGrainFactory grains, InstanceState state, Secret platformPassword, DateTimeOffset now)
    {
        var notice = For(state, platformPassword);
        if (!IsDue(notice, now))
        {
            return null;
        }

        try
        {
            await grains.GetGrain<IInstanceMeteringGrain>(state.Id).ObserveLifecycleAsync(notice);
            Told(notice, now);
            return null;
        }
        catch (Exception exception)
        {
            return exception;
        }
    }

    /// <summary>Notes when what billing meters (the metered state and the size) last changed; called as a change is stored.</summary>
    public static void Stamp(InstanceState state, DateTimeOffset now)
    {
        var meteredAs = $"{InstanceLifecycleTable.Metered(state.Lifecycle)}/{state.Size}";
        if (state.MeteredAs != meteredAs)
        {
            (state.MeteredAs, state.MeteredSince) = (meteredAs, now);
        }
    }

    /// <summary>What billing is told; its probe signs in as the platform's user with <paramref name="platformPassword"/>.</summary>
    public static InstanceLifecycleNotice For(InstanceState state, Secret platformPassword) => new()
    {
        ChangedAt = state.MeteredSince,
        TenantId = state.TenantId,
        State = InstanceLifecycleTable.Metered(state.Lifecycle),
        Size = state.Size,
        Probe = state.ProbeTarget() is { } target && state.Lifecycle != InstanceLifecycle.Deleted
            ? new ProbeTarget
            {
                Host = target.Host,
                Port = target.Port,
                Username = InstanceAccess.PlatformUser,
                Password = platformPassword,
                TlsAuthority = state.Tls ? state.TlsAuthority ?? "" : null,
            }
            : null,
    };
}
