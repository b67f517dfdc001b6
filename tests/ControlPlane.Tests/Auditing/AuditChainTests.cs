using System.Diagnostics;
using System.Text.Json;
using ControlPlane.Auditing;
using ControlPlane.Hosting;
using ControlPlane.Persistence;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TestServers;
using Xunit.Abstractions;

namespace ControlPlane.Tests.Auditing;

/// <summary>
/// The hash chain on a real database (SQLite as embedded mode keeps it; PostgreSQL as cluster mode does): a clean chain
/// verifies, and every kind of tampering is found at the record where it begins, including a rewrite of the whole
/// table with recomputed hashes, which only the heads written outside the database reveal.
/// </summary>
public sealed class AuditChainTests(ITestOutputHelper output) : IDisposable
{
    private readonly TestDirectory _directory = new();
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_clean_chain_of_events_intents_and_outcomes_verifies(string provider)
    {
        var chain = await ChainAsync(provider);
        await chain.FillAsync(12);
        await chain.Heads.PublishAsync();

        var verification = await chain.Verifier.VerifyAsync();

        Assert.True(verification.Intact, verification.BrokenLink?.Detail);
        Assert.Equal(12, verification.Records);
        Assert.Equal(1, verification.FirstId);
        Assert.Equal(12, verification.LastId);
        Assert.Equal(1, verification.HeadsChecked);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task An_edited_field_is_found_at_its_record(string provider)
    {
        var chain = await ChainAsync(provider);
        await chain.FillAsync(12);

        await chain.ExecuteAsync("UPDATE audit_events SET details = 'nothing happened' WHERE id = 7");

        AssertBrokenAt(await chain.Verifier.VerifyAsync(), 7, "hash-mismatch");
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_deleted_record_is_found_at_the_record_after_it(string provider)
    {
        var chain = await ChainAsync(provider);
        await chain.FillAsync(12);

        await chain.ExecuteAsync("DELETE FROM audit_events WHERE id = 7");

        AssertBrokenAt(await chain.Verifier.VerifyAsync(), 8, "records-missing");
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Two_records_with_their_contents_swapped_are_found_at_the_first(string provider)
    {
        var chain = await ChainAsync(provider);
        await chain.FillAsync(12);

        await chain.SwapContentsAsync(5, 9);

        AssertBrokenAt(await chain.Verifier.VerifyAsync(), 5, "hash-mismatch");
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_whole_table_rewritten_with_recomputed_hashes_is_found_by_the_heads_outside_the_database(string provider)
    {
        var chain = await ChainAsync(provider);
        await chain.FillAsync(6);
        var head = await chain.Heads.PublishAsync();
        await chain.FillAsync(4);

        await chain.ExecuteAsync("UPDATE audit_events SET actor = 'someone-else' WHERE id = 3");
        await chain.RehashFromAsync(3);

        var verification = await chain.Verifier.VerifyAsync();
        AssertBrokenAt(verification, head!.Id, "head-mismatch");
        Assert.Equal(6, head.Id);
        Assert.Contains($"{head.Id} {head.Hash} ", File.ReadAllText(chain.Heads.FilePath), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Records_removed_from_the_end_after_a_head_was_written_are_found(string provider)
    {
        var chain = await ChainAsync(provider);
        await chain.FillAsync(10);
        await chain.Heads.PublishAsync();

        await chain.ExecuteAsync("DELETE FROM audit_events WHERE id > 8");

        AssertBrokenAt(await chain.Verifier.VerifyAsync(), 9, "records-missing");
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Concurrent_appenders_make_one_unbroken_chain(string provider)
    {
        var chain = await ChainAsync(provider);
        // Separate AuditLog instances over the same database: as separate silos would append.
        var writers = Enumerable.Range(0, 4).Select(_ => new AuditLog(chain.Database, TimeProvider.System)).ToArray();

        await Task.WhenAll(writers.Select((log, writer) => Task.Run(async () =>
        {
            for (var i = 0; i < 25; i++)
            {
                await log.RecordAsync(new AuditEntry("system", null, "test.append", $"writer-{writer}", "succeeded"));
            }
        })));

        var verification = await chain.Verifier.VerifyAsync();
        Assert.True(verification.Intact, verification.BrokenLink?.Detail);
        Assert.Equal(100, verification.Records);
        Assert.Equal(100, verification.LastId);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Retention_archives_old_records_and_the_rest_still_verifies_from_the_checkpoint(string provider)
    {
        var chain = await ChainAsync(provider, retentionDays: 5);
        await chain.FillAsync(8);
        await chain.Heads.PublishAsync();
        _clock.Advance(TimeSpan.FromDays(4));
        await chain.FillAsync(3);
        _clock.Advance(TimeSpan.FromDays(2));

        var archive = await chain.Retention.ArchiveAsync();

        Assert.NotNull(archive);
        Assert.Equal((1, 8), (archive.FirstId, archive.LastId));
        var archived = File.ReadAllLines(archive.File).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.Equal(Enumerable.Range(1, 8), archived.Select(row => row.GetProperty("id").GetInt32()));
        Assert.All(archived, row => Assert.Equal(64, row.GetProperty("hash").GetString()!.Length));
        var verification = await chain.Verifier.VerifyAsync();
        Assert.True(verification.Intact, verification.BrokenLink?.Detail);
        Assert.Equal(8, verification.Checkpoint!.LastId);
        Assert.Equal(archived[^1].GetProperty("hash").GetString(), verification.Checkpoint.LastHash);
        // The remaining three, and the archive's own record, which links on from the checkpoint.
        Assert.Equal((9, 12), (verification.FirstId, verification.LastId));
        Assert.Contains(await chain.Log.ReadAsync(null, 10), record => record.Action == "audit.archive" && record.Actor == "system");

        await chain.ExecuteAsync("UPDATE audit_events SET outcome = 'succeeded' WHERE id = 9");
        AssertBrokenAt(await chain.Verifier.VerifyAsync(), 9, "hash-mismatch");
    }

    [Fact]
    public async Task Retention_does_not_archive_a_prefix_that_does_not_verify()
    {
        var chain = await ChainAsync("sqlite", retentionDays: 1);
        await chain.FillAsync(5);
        await chain.ExecuteAsync("UPDATE audit_events SET target = 'elsewhere' WHERE id = 2");
        _clock.Advance(TimeSpan.FromDays(2));

        Assert.Null(await chain.Retention.ArchiveAsync());

        Assert.Equal(5, (await chain.Verifier.VerifyAsync()).Records);
        Assert.False(Directory.Exists(chain.Retention.ArchiveDirectory) && Directory.EnumerateFiles(chain.Retention.ArchiveDirectory).Any());
    }

    [Fact]
    public async Task Records_written_before_the_chain_existed_are_sealed_into_it_by_the_next_append()
    {
        var chain = await ChainAsync("sqlite");
        for (var i = 0; i < 3; i++)
        {
            await chain.Database.ExecuteAsync(
                "INSERT INTO audit_events (occurred_at, actor, tenant_id, action, target, outcome) VALUES (@at, 'system', NULL, 'api-key.create', 'key_1', 'succeeded')",
                CancellationToken.None,
                ("at", DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture)));
        }

        await chain.Log.RecordAsync(new AuditEntry("system", null, "test.append", null, "succeeded"));

        var verification = await chain.Verifier.VerifyAsync();
        Assert.True(verification.Intact, verification.BrokenLink?.Detail);
        Assert.Equal((1, 4), (verification.FirstId, verification.LastId));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Append_cost_with_the_chain_is_measured(string provider)
    {
        var chain = await ChainAsync(provider);
        await chain.FillAsync(10);
        const int appends = 200;

        var stopwatch = Stopwatch.StartNew();
        for (var i = 0; i < appends; i++)
        {
            await chain.Log.RecordAsync(new AuditEntry("apikey:key_1 (ci)", "tnt-1", "instance.create", "ins-1", "accepted", "operation op-1"));
        }

        stopwatch.Stop();
        var verify = Stopwatch.StartNew();
        var verification = await chain.Verifier.VerifyAsync();
        verify.Stop();
        output.WriteLine($"{provider}: {stopwatch.Elapsed.TotalMilliseconds / appends:0.00} ms per chained append ({appends} sequential); verify of {verification.Records} records {verify.Elapsed.TotalMilliseconds:0} ms");
        Assert.True(verification.Intact);
    }

    private static void AssertBrokenAt(AuditVerification verification, long id, string problem)
    {
        Assert.False(verification.Intact);
        Assert.NotNull(verification.BrokenLink);
        Assert.Equal((id, problem), (verification.BrokenLink.Id, verification.BrokenLink.Problem));
    }

    private async Task<Chain> ChainAsync(string provider, int retentionDays = 400)
    {
        var database = provider == "postgres"
            ? Database.Postgres(await PostgresServer.CreateDatabaseAsync("audit"))
            : Database.Sqlite(Path.Combine(_directory.Path, "controlplane.db"));
        await Migrations.ApplyAsync(database, TestSchema.All);
        var options = Options.Create(new AuditOptions { RetentionDays = retentionDays });
        var dataDirectory = new DataDirectory(_directory.Path);
        var log = new AuditLog(database, _clock);
        var heads = new AuditHeads(database, dataDirectory, _clock, options, NullLogger<AuditHeads>.Instance);
        return new Chain(
            database, log, heads, new AuditVerifier(database, heads), new AuditRetention(database, log, dataDirectory, _clock, options, NullLogger<AuditRetention>.Instance));
    }

    private sealed record Chain(Database Database, AuditLog Log, AuditHeads Heads, AuditVerifier Verifier, AuditRetention Retention)
    {
        /// <summary>Records as the API writes them: an intent and its outcome, or an event, in turn.</summary>
        public async Task FillAsync(int rows)
        {
            for (var written = 0; written < rows;)
            {
                var entry = new AuditEntry("apikey:key_1 (ci)", "tnt-1", "tenant.plan.change", "tnt-1", AuditLog.Unknown)
                {
                    Before = """{"plan":"team"}""",
                    ClientAddress = "127.0.0.1",
                    UserAgent = "tests",
                    RequestId = $"00-{written:x32}-0000000000000001-01",
                };
                if (rows - written >= 2)
                {
                    var intent = await Log.BeginAsync(entry);
                    await Log.CompleteAsync(intent, entry with { Outcome = "succeeded", Before = null, After = """{"plan":"enterprise"}""" });
                    written += 2;
                }
                else
                {
                    await Log.RecordAsync(entry with { Action = "request.forbidden", Outcome = "rejected:forbidden" });
                    written++;
                }
            }
        }

        public Task<int> ExecuteAsync(string sql) => Database.ExecuteAsync(sql, CancellationToken.None);

        /// <summary>Exchanges every column but the id between two rows, as someone reordering the log would.</summary>
        public async Task SwapContentsAsync(long first, long second)
        {
            await using var connection = await Database.OpenAsync();
            var rows = await AuditRows.ReadAsync(connection, null, "WHERE id IN (@a, @b) ORDER BY id", CancellationToken.None, ("a", first), ("b", second));
            await WriteAsync(connection, rows[1] with { Id = first });
            await WriteAsync(connection, rows[0] with { Id = second });
        }

        /// <summary>What someone with write access to the table would do to hide an edit: recompute every hash from <paramref name="from"/> on.</summary>
        public async Task RehashFromAsync(long from)
        {
            await using var connection = await Database.OpenAsync();
            var rows = await AuditRows.ReadAsync(connection, null, "ORDER BY id", CancellationToken.None);
            var previous = AuditChain.Genesis;
            foreach (var row in rows)
            {
                var rewritten = row.Id < from ? row : row with { PrevHash = previous };
                rewritten = row.Id < from ? row : rewritten with { Hash = AuditChain.Hash(rewritten) };
                await WriteAsync(connection, rewritten);
                previous = rewritten.Hash!;
            }
        }

        private async Task WriteAsync(System.Data.Common.DbConnection connection, AuditRow row)
        {
            await using var command = connection.CreateCommand();
            command.CommandText = """
                UPDATE audit_events SET occurred_at = @at, kind = @kind, intent_id = @intent, actor = @actor, tenant_id = @tenant, action = @action,
                    target = @target, outcome = @outcome, details = @details, before_state = @before, after_state = @after, client_address = @address,
                    user_agent = @agent, request_id = @request, format_version = @version, prev_hash = @prev, hash = @hash
                WHERE id = @id
                """;
            Database.AddTimestamp(command, "at", row.OccurredAt);
            foreach (var (name, value) in new (string, object?)[]
            {
                ("kind", AuditRows.KindName(row.Kind)), ("intent", row.IntentId), ("actor", row.Entry.Actor), ("tenant", row.Entry.TenantId),
                ("action", row.Entry.Action), ("target", row.Entry.Target), ("outcome", row.Entry.Outcome), ("details", row.Entry.Details),
                ("before", row.Entry.Before), ("after", row.Entry.After), ("address", row.Entry.ClientAddress), ("agent", row.Entry.UserAgent),
                ("request", row.Entry.RequestId), ("version", row.FormatVersion), ("prev", row.PrevHash), ("hash", row.Hash), ("id", row.Id),
            })
            {
                var parameter = command.CreateParameter();
                parameter.ParameterName = name;
                parameter.Value = value ?? DBNull.Value;
                if (value is null && Database.IsPostgres)
                {
                    // An untyped NULL in SET is fine for PostgreSQL only with a type; these columns are text or bigint.
                    parameter.DbType = name == "intent" ? System.Data.DbType.Int64 : System.Data.DbType.String;
                }

                command.Parameters.Add(parameter);
            }

            await command.ExecuteNonQueryAsync();
        }
    }

    /// <summary>A clock the test moves, so records can age past the retention.</summary>
    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
