using Billing.Sla;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Provisioner.Health;

namespace Billing.Usage;

/// <summary>The durable part of an instance's metering (stored as JSON).</summary>
public sealed class MeteringState
{
    public string TenantId { get; set; } = "";
    public MeteredState State { get; set; }
    public string Size { get; set; } = "";
    /// <summary>The sequence number of the last lifecycle change recorded in <see cref="LifecycleLog"/>.</summary>
    public long LifecycleSequence { get; set; }
    /// <summary>When the last recorded lifecycle change took effect: a later one never takes effect before it.</summary>
    public DateTimeOffset? LifecycleChangedAt { get; set; }
    public DateTimeOffset? DeletedAt { get; set; }
    /// <summary>Every hour before this one is in the usage ledger.</summary>
    public DateTimeOffset? UsageAppendedUntil { get; set; }
    /// <summary>The operation counter's last reading: the process run it came from and its value.</summary>
    public string? LastRunId { get; set; }
    public long LastOperationsCount { get; set; }
    /// <summary>Operations counted per hour and not yet in the ledger.</summary>
    public List<HourlyOperations> PendingOperations { get; set; } = [];
}

public sealed class HourlyOperations
{
    public DateTimeOffset Hour { get; set; }
    public long Count { get; set; }
}

/// <summary>
/// Meters one instance. Lifecycle changes go to the <see cref="LifecycleLog"/> as they are reported; while the SLA
/// counts (Running or Failed) a timer probes the instance (authenticated PING, then INFO for its operation counter
/// and its process run) and records the minute in <see cref="ProbeMinutes"/>; once an hour has ended its instance-seconds (from the
/// lifecycle log) and operations are appended to the ledger with source ids fixed by instance, meter and hour, and the
/// hour is marked done only after the ledger took it, so a crash in between replays the same events, which the ledger
/// deduplicates. Every time comes from billing's clock.
/// </summary>
public sealed partial class InstanceMeteringGrain(
    [PersistentState("metering", "controlplane")] IPersistentState<MeteringState> state,
    [FromKeyedServices(BillingClock.Key)] TimeProvider clock,
    IOptions<SlaOptions> options,
    LifecycleLog lifecycle,
    ProbeMinutes probeMinutes,
    IServiceProvider services,
    ILogger<InstanceMeteringGrain> logger) : Grain, IInstanceMeteringGrain, IRemindable
{
    private const string ReminderName = "metering";
    private static readonly string[] s_infoSections = ["server", "stats"];

    private IGrainTimer? _timer;
    private ProbeMinute? _minute;
    private bool _warnedNoLedger;

    // Never stored: the instance's grain repeats it after every activation of either grain.
    private ProbeTarget? _probe;
    private bool _probeKnown;

    private MeteringState S => state.State;

    private string InstanceId => this.GetPrimaryKeyString();

    /// <summary>Deleted, and the hour it was deleted in is in the ledger: nothing is left to measure.</summary>
    private bool IsFinished => S.DeletedAt is { } deletedAt && S.UsageAppendedUntil > deletedAt;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (state.RecordExists && !IsFinished)
        {
            StartTimer();
        }

        return Task.CompletedTask;
    }

    public async Task ObserveLifecycleAsync(InstanceLifecycleNotice notice)
    {
        _probe = notice.Probe;
        _probeKnown = true;
        var known = state.RecordExists;
        if (known && (S.State == MeteredState.Deleted || (S.State == notice.State && S.Size == notice.Size)))
        {
            return;
        }

        var at = EffectiveAt(notice.ChangedAt);
        var sequence = S.LifecycleSequence + 1;
        // Recorded before the state that counts it: a crash in between re-records the same sequence number, which the log keeps once.
        await lifecycle.AppendAsync(InstanceId, notice.TenantId, sequence, new LifecycleChange(at, notice.State, notice.Size));
        S.TenantId = notice.TenantId;
        S.State = notice.State;
        S.Size = notice.Size;
        S.LifecycleSequence = sequence;
        S.LifecycleChangedAt = at;
        S.UsageAppendedUntil ??= UsageMeters.HourOf(at);
        if (notice.State == MeteredState.Deleted)
        {
            S.DeletedAt = at;
        }

        await state.WriteStateAsync();
        if (!known)
        {
            await this.RegisterOrUpdateReminder(ReminderName, options.Value.ReminderPeriod, options.Value.ReminderPeriod);
        }

        StartTimer();
        LogLifecycle(InstanceId, notice.State, notice.Size);
    }

    public async Task MeasureAsync()
    {
        if (!state.RecordExists || IsFinished)
        {
            return;
        }

        var now = clock.GetUtcNow();
        if (S.State is MeteredState.Running or MeteredState.Failed)
        {
            await ProbeAsync(now);
        }

        await AppendEndedHoursAsync(now);
        if (IsFinished)
        {
            _timer?.Dispose();
            _timer = null;
            if (await this.GetReminder(ReminderName) is { } reminder)
            {
                await this.UnregisterReminder(reminder);
            }

            this.DeactivateOnIdle();
        }
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (state.RecordExists && !IsFinished)
        {
            StartTimer();
            return;
        }

        if (await this.GetReminder(reminderName) is { } reminder)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    private async Task ProbeAsync(DateTimeOffset now)
    {
        if (!_probeKnown)
        {
            // Not yet told where the instance listens (both grains just woke up): that says nothing about whether it serves.
            return;
        }

        var target = _probe;
        var result = target is null
            ? new PingResult(false, TimeSpan.Zero, "The instance has no endpoint.")
            : await RespPingProbe.PingAsync(
                target.Host, target.Port, target.Username, target.Password.Value, options.Value.ProbeTimeout, s_infoSections, CancellationToken.None, target.TlsAuthority);

        var minute = ProbeMinute.MinuteOf(now);
        if (_minute?.Minute != minute)
        {
            _minute = await probeMinutes.ReadAsync(InstanceId, minute) ?? new ProbeMinute(minute);
        }

        _minute.Add(result.Answered, result.Latency);
        if (result.Answered && ProcessSighting.Parse(result.Info, now) is { } sighting)
        {
            _minute.Run = sighting;
        }

        await probeMinutes.SaveAsync(InstanceId, S.TenantId, _minute);
        if (!result.Answered)
        {
            LogProbeFailed(InstanceId, result.Detail);
        }

        if (result.Answered && OperationsReading.Parse(result.Info) is { } reading)
        {
            await CountOperationsAsync(now, reading);
        }
    }

    private async Task CountOperationsAsync(DateTimeOffset now, OperationsReading reading)
    {
        var previous = S.LastRunId is null ? null : new OperationsReading(S.LastRunId, S.LastOperationsCount);
        if (reading == previous)
        {
            return;
        }

        var hour = UsageMeters.HourOf(now);
        var pending = S.PendingOperations.Find(entry => entry.Hour == hour);
        if (pending is null)
        {
            S.PendingOperations.Add(pending = new HourlyOperations { Hour = hour });
        }

        pending.Count += reading.Since(previous);
        S.LastRunId = reading.RunId;
        S.LastOperationsCount = reading.Count;
        await state.WriteStateAsync();
    }

    private async Task AppendEndedHoursAsync(DateTimeOffset now)
    {
        var currentHour = UsageMeters.HourOf(now);
        var from = S.UsageAppendedUntil ?? currentHour;
        if (from >= currentHour)
        {
            return;
        }

        var ledger = services.GetService<IUsageLedger>();
        if (ledger is null)
        {
            if (!_warnedNoLedger)
            {
                _warnedNoLedger = true;
                LogNoLedger(InstanceId);
            }

            return;
        }

        var timeline = await lifecycle.ReadAsync(InstanceId) ?? new InstanceTimeline(InstanceId, S.TenantId, []);
        var events = new List<UsageEvent>();
        for (var hour = from; hour < currentHour; hour = hour.AddHours(1))
        {
            foreach (var (size, seconds) in timeline.RunningSecondsBySize(hour, hour.AddHours(1)))
            {
                events.Add(Event(UsageMeters.InstanceSeconds(size), hour, seconds));
            }

            var operations = S.PendingOperations.Where(entry => entry.Hour == hour).Sum(entry => entry.Count);
            if (operations > 0)
            {
                events.Add(Event(UsageMeters.Operations, hour, operations));
            }
        }

        if (events.Count > 0)
        {
            await ledger.AppendAsync(events);
        }

        S.UsageAppendedUntil = currentHour;
        S.PendingOperations.RemoveAll(entry => entry.Hour < currentHour);
        await state.WriteStateAsync();
        LogUsageAppended(InstanceId, events.Count, from, currentHour);
    }

    private UsageEvent Event(string meter, DateTimeOffset hour, long quantity) => new()
    {
        SourceEventId = UsageMeters.SourceEventId(InstanceId, meter, hour),
        TenantId = S.TenantId,
        InstanceId = InstanceId,
        Meter = meter,
        Quantity = quantity,
        OccurredAt = hour,
    };

    private void StartTimer()
    {
        if (_timer is not null)
        {
            return;
        }

        // Instances woken together after a restart spread their first probes over the second half of the interval.
        var interval = options.Value.ProbeInterval;
        var firstTick = (interval / 2) + TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * interval.TotalMilliseconds / 2);
        _timer = this.RegisterGrainTimer(
            _ => MeasureAsync(),
            new GrainTimerCreationOptions { DueTime = firstTick, Period = interval, Interleave = false, KeepAlive = true });
    }

    /// <summary>
    /// When a change reported now takes effect: when it happened, as the instance says, but never in the future of
    /// billing's clock, before the last recorded change, or in an hour whose usage is already in the ledger (that hour is final).
    /// </summary>
    private DateTimeOffset EffectiveAt(DateTimeOffset? changedAt)
    {
        var now = clock.GetUtcNow();
        var at = changedAt is { } happened && happened < now ? happened : now;
        foreach (var floor in new[] { S.LifecycleChangedAt, S.UsageAppendedUntil })
        {
            if (floor is { } notBefore && at < notBefore)
            {
                at = notBefore;
            }
        }

        return WholeSeconds(at);
    }

    private static DateTimeOffset WholeSeconds(DateTimeOffset time) => new(time.UtcTicks - (time.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceId} is metered as {State} at size {Size}")]
    private partial void LogLifecycle(string instanceId, MeteredState state, string size);

    [LoggerMessage(Level = LogLevel.Information, Message = "SLA probe of instance {InstanceId} failed: {Detail}")]
    private partial void LogProbeFailed(string instanceId, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No usage ledger is registered: the usage of instance {InstanceId} stays pending until one is")]
    private partial void LogNoLedger(string instanceId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Instance {InstanceId}: {Count} usage event(s) appended for {From} to {Until}")]
    private partial void LogUsageAppended(string instanceId, int count, DateTimeOffset from, DateTimeOffset until);
}
