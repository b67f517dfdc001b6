using ControlPlane.Tenants;

namespace ControlPlane.Instances;

/// <summary>
/// The end of an instance's life: once deleted, its tenant's index marks it, and its state stays for
/// <see cref="RetentionOptions.DeletedInstances"/> (answering reads) until its reminder removes it. The audit log, not
/// grain state, is the permanent record.
/// </summary>
public sealed partial class InstanceGrain
{
    /// <summary>The instance was just deleted: no more checks; its state goes when its retention ends.</summary>
    private async Task RetireAsync()
    {
        StopTimer();
        await GrainFactory.GetGrain<ITenantGrain>(S.TenantId).InstanceDeletedAsync(S.Id, stateRemoved: false);
        var retention = TimeSpan.FromSeconds(Math.Max(1, retentionOptions.Value.DeletedInstances.TotalSeconds));
        await this.RegisterOrUpdateReminder(ReminderName, retention, _reconcile.ReminderPeriod);
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (Live)
        {
            StartTimer();
            return;
        }

        // A deleted instance keeps its reminder until billing has heard of the deletion (it would bill it forever
        // otherwise), then until its retention ends, when its state goes: the audit log is the permanent record.
        await NotifyBillingAsync();
        if (state.RecordExists && !_billing.DeletionHeard)
        {
            return;
        }

        var remaining = state.RecordExists ? S.DeletedAt!.Value + retentionOptions.Value.DeletedInstances - Now : TimeSpan.Zero;
        if (remaining > TimeSpan.Zero)
        {
            await this.RegisterOrUpdateReminder(ReminderName, remaining, TimeSpan.FromDays(1));
            return;
        }

        if (state.RecordExists)
        {
            var tenant = GrainFactory.GetGrain<ITenantGrain>(S.TenantId);
            // Recorded before the state goes; a crash in between records it again, once.
            await AuditSystemChangesAsync();
            await audit.RecordOnceAsync(SystemChanges.StateRemoved(S, retentionOptions.Value.DeletedInstances));
            await state.ClearStateAsync();
            await tenant.InstanceDeletedAsync(this.GetPrimaryKeyString(), stateRemoved: true);
            LogPruned(this.GetPrimaryKeyString());
        }

        if (await this.GetReminder(reminderName) is { } reminder)
        {
            await this.UnregisterReminder(reminder);
        }
    }
}
