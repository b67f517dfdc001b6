using Billing.Usage;
using ControlPlane.Instances;

namespace ControlPlane.Tests.Instances;

/// <summary>What the instance tells billing, and when a notice is due.</summary>
public sealed class BillingNoticesTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 10, 0, 0, TimeSpan.Zero);
    private static readonly Provisioner.Deployments.Secret s_platform = Provisioner.Deployments.Secret.Of("platform-password");

    [Fact]
    public void A_notice_carries_when_the_metered_state_or_size_changed_not_when_anything_else_did()
    {
        var state = new InstanceState { Id = "ins-1", TenantId = "tnt-1", Lifecycle = InstanceLifecycle.Provisioning, Size = "small" };

        BillingNotices.Stamp(state, T0);
        state.Lifecycle = InstanceLifecycle.Running;
        BillingNotices.Stamp(state, T0.AddSeconds(3));
        var running = BillingNotices.For(state, s_platform);
        state.HealthDetail = "answers in 1 ms";
        BillingNotices.Stamp(state, T0.AddMinutes(5));
        var unchanged = BillingNotices.For(state, s_platform);
        state.Size = "medium";
        BillingNotices.Stamp(state, T0.AddMinutes(9));

        Assert.Equal((MeteredState.Running, T0.AddSeconds(3)), (running.State, running.ChangedAt));
        Assert.Equal(running, unchanged);
        Assert.Equal(("medium", T0.AddMinutes(9)), (BillingNotices.For(state, s_platform).Size, BillingNotices.For(state, s_platform).ChangedAt));
    }

    [Fact]
    public void A_notice_is_due_when_it_changed_and_again_after_the_refresh()
    {
        var notices = new BillingNotices();
        var notice = new InstanceLifecycleNotice { TenantId = "tnt-1", State = MeteredState.Running, Size = "small", ChangedAt = T0 };

        Assert.True(notices.IsDue(notice, T0));
        notices.Told(notice, T0);

        Assert.False(notices.IsDue(notice, T0.AddSeconds(30)));
        Assert.True(notices.IsDue(notice with { State = MeteredState.Stopped }, T0.AddSeconds(30)));
        Assert.True(notices.IsDue(notice, T0 + BillingNotices.Refresh));
    }
}
