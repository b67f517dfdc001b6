using System.Diagnostics;
using System.Globalization;
using System.Text;
using Billing.Ledger;
using Billing.Reconciliation;
using Billing.Stripe;
using Billing.Usage;
using ControlPlane.Persistence;
using FakeStripe;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using TestServers;

namespace Billing.Bench;

internal sealed record BenchOptions(int Events, int Batch, int Writers, int Runs, int Tenants, string? Postgres, bool SkipReconciliation, bool SkipSqlite, bool ReconcileSqlite);

internal static class Benchmark
{
    private static readonly string[] s_meters = ["instance_seconds_small", "instance_seconds_large", "operations"];
    private static readonly DateOnly s_month = new(2026, 11, 1);
    private static readonly List<string> s_createdDatabases = [];
    private static readonly string s_sqliteRoot = Path.Combine(Path.GetTempPath(), "billing-bench", Guid.NewGuid().ToString("N"));

    public static async Task<int> RunAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        var admin = options.Postgres ?? PostgresServer.AdminConnectionString;
        try
        {
            return await MeasureAsync(options, admin, cancellationToken);
        }
        finally
        {
            await CleanUpAsync(admin);
        }
    }

    /// <summary>Drops every database the run created (a given server keeps nothing of it) and the SQLite files.</summary>
    private static async Task CleanUpAsync(string admin)
    {
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            foreach (var name in s_createdDatabases)
            {
                await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
                await drop.ExecuteNonQueryAsync();
            }
        }

        if (Directory.Exists(s_sqliteRoot))
        {
            Directory.Delete(s_sqliteRoot, recursive: true);
        }
    }

    private static async Task<int> MeasureAsync(BenchOptions options, string admin, CancellationToken cancellationToken)
    {
        Console.WriteLine($"Billing benchmark: {options.Events:N0} events per ingest run, batches of {options.Batch:N0}, {options.Writers} PostgreSQL writer(s), median of {options.Runs} run(s)");
        Console.WriteLine($"Machine: {Environment.ProcessorCount} logical CPU(s), .NET {Environment.Version}");
        Console.WriteLine();

        var summary = new StringBuilder();
        foreach (var provider in options.SkipSqlite ? [DatabaseProvider.Postgres] : new[] { DatabaseProvider.Sqlite, DatabaseProvider.Postgres })
        {
            var writers = provider == DatabaseProvider.Postgres ? options.Writers : 1;
            var ledger = new List<double>();
            var replay = new List<double>();
            var baseline = new List<double>();
            for (var run = 0; run < options.Runs; run++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var events = Generate(options.Events, options.Tenants, seed: run);
                // Alternate which goes first, so a warming cache or a neighbour's load hits both alike.
                if (run % 2 == 0)
                {
                    baseline.Add(await BaselineAsync(provider, admin, events, options.Batch, writers));
                    (var first, var again) = await LedgerAsync(provider, admin, events, options.Batch, writers);
                    ledger.Add(first);
                    replay.Add(again);
                }
                else
                {
                    (var first, var again) = await LedgerAsync(provider, admin, events, options.Batch, writers);
                    ledger.Add(first);
                    replay.Add(again);
                    baseline.Add(await BaselineAsync(provider, admin, events, options.Batch, writers));
                }
            }

            var name = provider == DatabaseProvider.Postgres ? "PostgreSQL" : "SQLite";
            Console.WriteLine($"{name} ingestion ({writers} writer(s)), events/s, median of {options.Runs}:");
            Console.WriteLine($"  baseline: plain INSERT, no dedupe, no hourly totals  {Median(baseline),12:N0}");
            Console.WriteLine($"  ledger: new events (dedupe + hourly totals)          {Median(ledger),12:N0}   ratio to baseline {Median(ledger) / Median(baseline):0.00}");
            Console.WriteLine($"  ledger: the same events again (all duplicates)       {Median(replay),12:N0}");
            Console.WriteLine();
            summary.Append(CultureInfo.InvariantCulture, $"ledger-{name.ToLowerInvariant()} events_per_s={Median(ledger):0} baseline={Median(baseline):0} ratio={Median(ledger) / Median(baseline):0.00}; ");
        }

        if (!options.SkipReconciliation)
        {
            foreach (var provider in options.ReconcileSqlite ? new[] { DatabaseProvider.Postgres, DatabaseProvider.Sqlite } : [DatabaseProvider.Postgres])
            {
                var (reconcile, floor, lines, discrepancies) = await ReconciliationAsync(provider, admin, options, cancellationToken);
                var name = provider == DatabaseProvider.Postgres ? "PostgreSQL" : "SQLite";
                Console.WriteLine($"{name} reconciliation of {s_month:yyyy-MM}: {options.Tenants:N0} tenants x {s_meters.Length} meters x {DaysIn(s_month) * 24} hourly buckets, median of {options.Runs}:");
                Console.WriteLine($"  baseline: the ledger's GROUP BY alone                {floor.TotalSeconds,10:0.000} s");
                Console.WriteLine($"  reconciliation (our side + Stripe summaries/invoices){reconcile.TotalSeconds,10:0.000} s   ratio to baseline {reconcile / floor:0.0}   target < 10 s");
                Console.WriteLine($"  {lines:N0} lines, {discrepancies:N0} discrepancies (one planted per 997 outbox rows)");
                Console.WriteLine();
                summary.Append(CultureInfo.InvariantCulture, $"reconciliation-{name.ToLowerInvariant()} s={reconcile.TotalSeconds:0.000}; ");
            }
        }

        Console.WriteLine(summary.ToString().TrimEnd(' ', ';'));
        return 0;
    }

    private static async Task<(double First, double Replay)> LedgerAsync(DatabaseProvider provider, string admin, UsageEvent[] events, int batch, int writers)
    {
        var database = await FreshDatabaseAsync(provider, admin);
        var ledger = new UsageLedger(database, TimeProvider.System);
        var first = await TimedAsync(events, batch, writers, chunk => ledger.AppendAsync(chunk), expected: events.Length);
        var replay = await TimedAsync(events, batch, writers, chunk => ledger.AppendAsync(chunk), expected: 0);
        return (first, replay);
    }

    private static async Task<double> BaselineAsync(DatabaseProvider provider, string admin, UsageEvent[] events, int batch, int writers)
    {
        var database = await FreshDatabaseAsync(provider, admin);
        return await TimedAsync(events, batch, writers, chunk => PlainInsert.AppendAsync(database, chunk), expected: events.Length);
    }

    /// <summary>Writers each take the events of their own tenants (as producers are sharded), in batches; answers events/s.</summary>
    private static async Task<double> TimedAsync(UsageEvent[] events, int batch, int writers, Func<UsageEvent[], Task<int>> append, int expected)
    {
        var partitions = events.GroupBy(e => Math.Abs(e.TenantId.GetHashCode(StringComparison.Ordinal)) % writers).Select(g => g.Chunk(batch).ToList()).ToList();
        var stopwatch = Stopwatch.StartNew();
        var added = await Task.WhenAll(partitions.Select(chunks => Task.Run(async () =>
        {
            var sum = 0;
            foreach (var chunk in chunks)
            {
                sum += await append(chunk);
            }

            return sum;
        })));
        stopwatch.Stop();
        if (added.Sum() != expected)
        {
            throw new InvalidOperationException($"Expected {expected} new rows, the store reported {added.Sum()}.");
        }

        return events.Length / stopwatch.Elapsed.TotalSeconds;
    }

    private static async Task<(TimeSpan Reconcile, TimeSpan Floor, int Lines, int Discrepancies)> ReconciliationAsync(
        DatabaseProvider provider, string admin, BenchOptions options, CancellationToken cancellationToken)
    {
        var (start, end) = UsageHours.Month(s_month);
        var clock = new FixedClock(UsageHours.ToTime(end).AddDays(2));
        await using var stripe = await FakeStripeServer.StartAsync(clock);
        var database = await FreshDatabaseAsync(provider, admin);
        var services = new ServiceCollection()
            .AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning))
            .AddSingleton(database)
            .AddSingleton<TimeProvider>(clock)
            .AddStripeBilling(new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build());
        services.Configure<StripeBillingOptions>(stripeOptions =>
        {
            stripeOptions.ApiKey = stripe.ApiKey;
            stripeOptions.ApiBase = stripe.BaseUrl;
            stripeOptions.MeterEventsBase = stripe.BaseUrl;
            foreach (var meter in s_meters)
            {
                stripeOptions.Meters[meter] = new StripeMeterOptions { PriceId = "price_" + meter };
            }
        });
        await using var provided = services.BuildServiceProvider();

        Console.Write($"Seeding {options.Tenants:N0} x {s_meters.Length} x {(end - start) / 3600} hourly buckets on {provider}... ");
        var seeding = Stopwatch.StartNew();
        var ledger = provided.GetRequiredService<UsageLedger>();
        var tenants = Enumerable.Range(0, options.Tenants).Select(t => $"tnt-r{t:0000}").ToList();
        var buckets = tenants.SelectMany(tenant => s_meters.Select(meter => (tenant, meter))).ToList();
        await Parallel.ForEachAsync(buckets.Chunk(Math.Max(1, 20_000 / (int)((end - start) / 3600))), new ParallelOptions { MaxDegreeOfParallelism = provider == DatabaseProvider.Postgres ? options.Writers : 1 }, async (chunk, token) =>
            await ledger.AppendAsync([.. chunk.SelectMany(b => Hours(start, end).Select(hour => new UsageEvent
            {
                SourceEventId = $"{b.tenant}:{b.meter}:{hour}",
                TenantId = b.tenant,
                InstanceId = "ins-" + b.tenant,
                Meter = b.meter,
                Quantity = Quantity(b.tenant, b.meter, hour),
                OccurredAt = UsageHours.ToTime(hour),
            }))], token));
        await SeedAcknowledgedOutboxAsync(database);

        var customers = provided.GetRequiredService<StripeCustomers>();
        var meters = provided.GetRequiredService<StripeMeters>();
        foreach (var meter in s_meters)
        {
            await meters.EnsureAsync(meter, cancellationToken);
        }

        var prices = s_meters.ToDictionary(m => m, m => "price_" + m);
        await Parallel.ForEachAsync(tenants, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, async (tenant, token) =>
        {
            var customer = await customers.EnsureAsync(tenant, cancellationToken: token);
            foreach (var meter in s_meters)
            {
                stripe.SeedMeterEvents(customer, meter, Hours(start, end).Select(hour => (hour, Quantity(tenant, meter, hour))));
            }

            stripe.FinalizeInvoice(customer, start, end, prices);
        });
        Console.WriteLine($"{seeding.Elapsed.TotalSeconds:0.0} s");

        var reconciliation = provided.GetRequiredService<FinanceReconciliation>();
        var times = new List<TimeSpan>();
        var floors = new List<TimeSpan>();
        ReconciliationReport? report = null;
        for (var run = 0; run < options.Runs; run++)
        {
            var floor = Stopwatch.StartNew();
            await ledger.TotalsAsync(start, end, cancellationToken);
            floors.Add(floor.Elapsed);
            var timer = Stopwatch.StartNew();
            report = await reconciliation.ReconcileAsync(s_month, cancellationToken);
            times.Add(timer.Elapsed);
        }

        if (report!.Lines.Count != buckets.Count)
        {
            throw new InvalidOperationException($"Expected {buckets.Count} lines, got {report.Lines.Count}.");
        }

        return (Median(times), Median(floors), report.Lines.Count, report.DiscrepancyCount);
    }

    /// <summary>
    /// Every hour as if the dispatcher had sent it: set-based, because a million HTTP calls would measure the seeding,
    /// not the reconciliation. One row in 997 is left pending, so the report has discrepancies to classify.
    /// </summary>
    private static async Task SeedAcknowledgedOutboxAsync(Database database)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandTimeout = 600;
        command.CommandText = """
            INSERT INTO meter_outbox (identifier, tenant_id, meter, hour_start, version, value, status, attempts, next_attempt_at, created_at, completed_at)
            SELECT tenant_id || ':' || meter || ':' || hour_start || ':v1', tenant_id, meter, hour_start, 1, total, 'acknowledged', 1, 0, 0, 0 FROM usage_hourly;
            UPDATE usage_hourly SET enqueued_total = total, versions = 1;
            UPDATE meter_outbox SET status = 'pending' WHERE id % 997 = 0;
            """;
        await command.ExecuteNonQueryAsync();
    }

    private static IEnumerable<long> Hours(long start, long end)
    {
        for (var hour = start; hour < end; hour += UsageHours.SecondsPerHour)
        {
            yield return hour;
        }
    }

    private static long Quantity(string tenant, string meter, long hour) =>
        1 + (Math.Abs((tenant.GetHashCode(StringComparison.Ordinal) * 31) ^ meter.Length ^ (int)(hour / 3600)) % 3600);

    /// <summary>
    /// A stream as producers send it: every tenant reports each meter once a minute (counters sampled by the minute),
    /// in time order, so an hour bucket gathers sixty events. The worst case, every event its own bucket, is slower:
    /// each event then also creates an hourly row.
    /// </summary>
    private static UsageEvent[] Generate(int count, int tenants, int seed)
    {
        var start = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
        var perMinute = tenants * s_meters.Length;
        return [.. Enumerable.Range(0, count).Select(i => new UsageEvent
        {
            SourceEventId = $"bench-{seed}-{i:00000000}",
            TenantId = $"tnt-b{i / s_meters.Length % tenants:0000}",
            InstanceId = $"ins-b{i / s_meters.Length % tenants:0000}",
            Meter = s_meters[i % s_meters.Length],
            Quantity = 1 + (i % 3599),
            OccurredAt = start.AddMinutes(i / perMinute),
        })];
    }

    private static async Task<Database> FreshDatabaseAsync(DatabaseProvider provider, string admin)
    {
        Database database;
        if (provider == DatabaseProvider.Postgres)
        {
            var name = $"bench_{Guid.NewGuid():N}";
            await using (var connection = new NpgsqlConnection(admin))
            {
                await connection.OpenAsync();
                await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
                await create.ExecuteNonQueryAsync();
            }

            s_createdDatabases.Add(name);

            database = Database.Postgres(new NpgsqlConnectionStringBuilder(admin) { Database = name, MaxPoolSize = 50 }.ConnectionString);
        }
        else
        {
            var directory = Path.Combine(s_sqliteRoot, Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(directory);
            database = Database.Sqlite(Path.Combine(directory, "billing.db"));
        }

        await Migrations.ApplyAsync(database, StripeBillingSchema.All);
        await PlainInsert.CreateTableAsync(database);
        return database;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static TimeSpan Median(List<TimeSpan> values) => TimeSpan.FromTicks((long)Median(values.Select(v => (double)v.Ticks).ToList()));

    private static int DaysIn(DateOnly month) => DateTime.DaysInMonth(month.Year, month.Month);

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
