using ControlPlane.Api;
using ControlPlane.Instances;
using ControlPlane.Operations;

namespace ControlPlane.Tests.Instances;

/// <summary>What an instance remembers stays bounded: events, operations (by count and age, never the running one), a stalled operation's log.</summary>
public sealed class InstanceHistoryTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Events_keep_the_newest_and_number_them_in_order()
    {
        var state = new InstanceState();

        for (var i = 0; i < InstanceHistory.MaxEvents + 25; i++)
        {
            InstanceHistory.Record(state, T0.AddSeconds(i), "repaired", $"event {i}");
        }

        Assert.Equal(InstanceHistory.MaxEvents, state.Events.Count);
        Assert.Equal("event 25", state.Events[0].Message);
        Assert.Equal(InstanceHistory.MaxEvents + 25, state.Events[^1].Sequence);
        Assert.Equal(state.Events.Select(e => e.Sequence).Order(), state.Events.Select(e => e.Sequence));
    }

    [Fact]
    public void Operations_beyond_the_count_are_pruned_only_when_older_than_the_age_and_never_the_running_one()
    {
        var state = new InstanceState();
        state.Operations.Add(Operation("old-running", T0, OperationStatus.Running));
        for (var i = 1; i <= 5; i++)
        {
            state.Operations.Add(Operation($"op-{i}", T0.AddDays(i), OperationStatus.Succeeded));
        }

        var retention = new RetentionOptions { Operations = 2, OperationAge = TimeSpan.FromDays(2.5) };
        InstanceHistory.PruneOperations(state, T0.AddDays(5), retention);

        // Excess is 4 (the oldest four); of those, op-1 and op-2 are older than 2.5 days; op-3 is young enough to stay.
        Assert.Equal(["old-running", "op-3", "op-4", "op-5"], state.Operations.Select(o => o.Id));
    }

    [Fact]
    public void A_stalled_operations_log_keeps_its_first_lines_and_the_latest_and_counts_the_rest()
    {
        var operation = Operation("stalled", T0, OperationStatus.Running);

        for (var i = 0; i < 1_000; i++)
        {
            operation = operation.WithLog(T0.AddMinutes(i), $"line {i}");
        }

        Assert.Equal(OperationRecord.MaxLogEntries, operation.Log.Length);
        Assert.Equal("line 0", operation.Log[0].Message);
        Assert.Equal("line 999", operation.Log[^1].Message);
        Assert.Equal(1_000 - OperationRecord.MaxLogEntries, operation.OmittedLogEntries);
    }

    [Fact]
    public void Pages_follow_the_order_to_the_end_and_a_removed_item_does_not_shift_the_next_page()
    {
        var items = Enumerable.Range(1, 7).Select(i => (Id: $"i{i}", At: T0.AddMinutes(i))).ToList();
        string Key((string Id, DateTimeOffset At) item) => Paging.Key(item.At, item.Id);

        var first = Paging.Page(items, Key, descending: false, PageRequest.First(3));
        items.RemoveAt(0);
        var second = Paging.Page(items, Key, descending: false, new PageRequest { Size = 3, After = first.NextAfter });
        var third = Paging.Page(items, Key, descending: false, new PageRequest { Size = 3, After = second.NextAfter });

        Assert.Equal(["i1", "i2", "i3"], first.Items.Select(i => i.Id));
        Assert.Equal(["i4", "i5", "i6"], second.Items.Select(i => i.Id));
        Assert.Equal(["i7"], third.Items.Select(i => i.Id));
        Assert.Null(third.NextAfter);
        Assert.True(Paging.TryRead(Paging.Token("tenants/t1/instances", first.NextAfter!), out var list, out var after));
        Assert.Equal(("tenants/t1/instances", first.NextAfter), (list, after));
        Assert.False(Paging.TryRead("bm90LWpzb24", out _, out _));
    }

    private static OperationRecord Operation(string id, DateTimeOffset createdAt, OperationStatus status) => new()
    {
        Id = id,
        TenantId = "tnt-1",
        InstanceId = "ins-1",
        Type = OperationType.Stop,
        Status = status,
        RequestedBy = "test",
        CreatedAt = createdAt,
        UpdatedAt = createdAt,
    };
}
