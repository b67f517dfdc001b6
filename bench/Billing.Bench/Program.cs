using System.CommandLine;
using Billing.Bench;

var events = new Option<int>("--events")
{
    Description = "Usage events per ingest run.",
    DefaultValueFactory = _ => 300_000,
};
var batch = new Option<int>("--batch")
{
    Description = "Events per AppendAsync call (one transaction).",
    DefaultValueFactory = _ => 5_000,
};
var writers = new Option<int>("--writers")
{
    Description = "Concurrent writers on PostgreSQL (SQLite has one writer by design).",
    DefaultValueFactory = _ => 4,
};
var runs = new Option<int>("--runs")
{
    Description = "Measured runs of each kind; the report gives their median.",
    DefaultValueFactory = _ => 3,
};
var tenants = new Option<int>("--tenants")
{
    Description = "Tenants in the reconciliation month (each with 3 meters and 720 hourly buckets).",
    DefaultValueFactory = _ => 1_000,
};
var postgres = new Option<string?>("--postgres")
{
    Description = "A PostgreSQL connection string to a superuser; without it a throwaway server is started (initdb + pg_ctl).",
};
var skipReconciliation = new Option<bool>("--skip-reconciliation")
{
    Description = "Only measure ingestion.",
};
var skipSqlite = new Option<bool>("--skip-sqlite")
{
    Description = "Measure PostgreSQL only.",
};
var reconcileSqlite = new Option<bool>("--reconcile-sqlite")
{
    Description = "Also reconcile on SQLite (seeding 2 million rows there takes minutes).",
};
foreach (var positive in new[] { events, batch, writers, runs, tenants })
{
    positive.Validators.Add(result =>
    {
        if (result.GetValueOrDefault<int>() < 1)
        {
            result.AddError($"{positive.Name} must be at least 1.");
        }
    });
}

var root = new RootCommand(
    "Measures usage-ledger ingestion with dedupe (SQLite and PostgreSQL) against a plain INSERT baseline, and finance " +
    "reconciliation of a month of hourly buckets. Exits non-zero only when something failed, never because a target was missed.")
{
    events,
    batch,
    writers,
    runs,
    tenants,
    postgres,
    skipReconciliation,
    skipSqlite,
    reconcileSqlite,
};
root.SetAction((parsed, cancellationToken) => Benchmark.RunAsync(
    new BenchOptions(
        parsed.GetValue(events),
        parsed.GetValue(batch),
        parsed.GetValue(writers),
        parsed.GetValue(runs),
        parsed.GetValue(tenants),
        parsed.GetValue(postgres),
        parsed.GetValue(skipReconciliation),
        parsed.GetValue(skipSqlite),
        parsed.GetValue(reconcileSqlite)),
    cancellationToken));
return await root.Parse(args).InvokeAsync();
