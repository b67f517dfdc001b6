using Billing.Ledger;
using Billing.Stripe.Tests.Support;
using Billing.Usage;
using ControlPlane.Persistence;

namespace Billing.Stripe.Tests.Ledger;

public sealed class UsageLedgerTests
{
    private static readonly DateTimeOffset s_start = new(2026, 11, 2, 10, 0, 0, TimeSpan.Zero);

    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.Postgres];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task A_replayed_or_repeated_source_event_is_kept_once(DatabaseProvider provider)
    {
        var database = await TestDatabases.CreateAsync(provider);
        var ledger = new UsageLedger(database, TestDatabases.Clock(s_start));
        UsageEvent[] batch = [Usage("e1", 10), Usage("e2", 20), Usage("e2", 20), Usage("e3", 30, minutes: 70)];

        Assert.Equal(3, await ledger.AppendAsync(batch));
        Assert.Equal(0, await ledger.AppendAsync(batch));
        Assert.Equal(1, await ledger.AppendAsync([Usage("e1", 10), Usage("e4", 5)]));

        var totals = await ledger.TotalsAsync(long.MinValue, long.MaxValue);
        Assert.Equal(65, totals[("tnt-a", "operations")]);
        Assert.Equal(4, await RowCountAsync(database, "usage_ledger"));
        // The per-hour totals the outbox reads always equal the ledger's rows.
        Assert.Equal(
            new Dictionary<long, long> { [UsageHours.HourStart(s_start)] = 35, [UsageHours.HourStart(s_start.AddMinutes(70))] = 30 },
            await HourlyTotalsAsync(database));
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task A_correction_is_a_compensating_row_and_the_original_stays(DatabaseProvider provider)
    {
        var database = await TestDatabases.CreateAsync(provider);
        var ledger = new UsageLedger(database, TestDatabases.Clock(s_start));
        await ledger.AppendAsync([Usage("e1", 100)]);

        Assert.Equal(1, await ledger.AppendAsync([Usage("e1-fix", -40) with { Corrects = "e1" }]));
        Assert.Equal(0, await ledger.AppendAsync([Usage("e1-fix", -40) with { Corrects = "e1" }]));

        Assert.Equal(60, (await ledger.TotalsAsync(long.MinValue, long.MaxValue))[("tnt-a", "operations")]);
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT quantity FROM usage_ledger WHERE source_event_id = 'e1'";
        Assert.Equal(100L, Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task A_batch_with_an_invalid_event_is_refused_whole(DatabaseProvider provider)
    {
        var database = await TestDatabases.CreateAsync(provider);
        var ledger = new UsageLedger(database, TestDatabases.Clock(s_start));

        await Assert.ThrowsAsync<ArgumentException>(() => ledger.AppendAsync([Usage("ok", 1), Usage("negative", -1)]));
        await Assert.ThrowsAsync<ArgumentException>(() => ledger.AppendAsync([Usage("bad-meter", 1) with { Meter = "Operations:x" }]));
        await Assert.ThrowsAsync<ArgumentException>(() => ledger.AppendAsync([Usage("bad-tenant", 1) with { TenantId = "tnt:a" }]));

        Assert.Equal(0, await RowCountAsync(database, "usage_ledger"));
    }

    [Fact]
    public async Task Concurrent_overlapping_batches_on_PostgreSQL_count_each_event_once()
    {
        var database = await TestDatabases.CreateAsync(DatabaseProvider.Postgres);
        var ledger = new UsageLedger(database, TestDatabases.Clock(s_start));
        // Eight writers, each sending ids 0..1999 of a shared set in a different order, all into the same hours.
        var added = await Task.WhenAll(Enumerable.Range(0, 8).Select(writer => Task.Run(() =>
        {
            var ids = Enumerable.Range(0, 2000).OrderBy(i => (i * 7919 + writer * 104729) % 2000).ToList();
            return ledger.AppendAsync([.. ids.Select(i => Usage($"shared-{i}", 1, minutes: i % 180))]);
        })));

        Assert.Equal(2000, added.Sum());
        Assert.Equal(2000, (await ledger.TotalsAsync(long.MinValue, long.MaxValue))[("tnt-a", "operations")]);
        Assert.Equal(2000, (await HourlyTotalsAsync(database)).Values.Sum());
    }

    private static UsageEvent Usage(string id, long quantity, int minutes = 0) => new()
    {
        SourceEventId = id,
        TenantId = "tnt-a",
        InstanceId = "ins-1",
        Meter = "operations",
        Quantity = quantity,
        OccurredAt = s_start.AddMinutes(minutes),
    };

    private static async Task<long> RowCountAsync(Database database, string table)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COUNT(*) FROM {table}";
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<Dictionary<long, long>> HourlyTotalsAsync(Database database)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT hour_start, total FROM usage_hourly";
        var totals = new Dictionary<long, long>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            totals[reader.GetInt64(0)] = reader.GetInt64(1);
        }

        return totals;
    }
}
