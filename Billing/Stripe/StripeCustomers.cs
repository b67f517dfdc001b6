using System.Globalization;
using ControlPlane.Persistence;
using Microsoft.Extensions.Logging;
using Stripe;

namespace Billing.Stripe;

/// <summary>Told when a tenant's Stripe customer is known, so the control plane can keep the id on the tenant.</summary>
public interface IStripeCustomerSink
{
    Task CustomerCreatedAsync(string tenantId, string customerId, CancellationToken cancellationToken);
}

/// <summary>
/// One Stripe customer per tenant, ever, whatever the number of hosts. Onboarding records the wish
/// (<see cref="RequestAsync"/>) in the same database as everything else; <see cref="EnsureAsync"/> then finds or
/// creates the customer: first our own row, then Stripe's search by the tenant id in metadata (covers a crash after
/// Stripe answered but before our write, older than the idempotency window), and only then a create whose idempotency
/// key is derived from the tenant id (covers the same crash within 24 h, when search may not show the new customer
/// yet, and two hosts creating at once). Stripe keeps a create's failure under its key for 24 h; when it replays one,
/// a list of the customers created since the key was first used (lists, unlike search, see a new customer at once)
/// tells whether the failed create made one; if not, every host moves on to the key's next generation, once.
/// </summary>
public sealed partial class StripeCustomers(
    Database database,
    StripeGateway stripe,
    TimeProvider clock,
    IEnumerable<IStripeCustomerSink> sinks,
    ILogger<StripeCustomers> logger)
{
    /// <summary>How far Stripe's clock may be behind ours when listing customers created since a time.</summary>
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    /// <summary>Records that the tenant needs a Stripe customer; the billing worker creates it. Safe to call again.</summary>
    public async Task RequestAsync(string tenantId, string? tenantName, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = MeterEventOutbox.Command(connection, null, """
            INSERT INTO stripe_customers (tenant_id, tenant_name, requested_at) VALUES (@tenant, @name, @now)
            ON CONFLICT (tenant_id) DO NOTHING
            """);
        Database.AddParameter(command, "tenant", tenantId);
        Database.AddParameter(command, "name", tenantName);
        Database.AddParameter(command, "now", clock.GetUtcNow().ToUnixTimeSeconds());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Creates the customers onboarding asked for; a failure leaves the request for the next round.</summary>
    public async Task<int> CreateRequestedAsync(CancellationToken cancellationToken = default)
    {
        var requested = new List<(string Tenant, string? Name)>();
        await using (var connection = await database.OpenAsync(cancellationToken))
        await using (var command = MeterEventOutbox.Command(connection, null, "SELECT tenant_id, tenant_name FROM stripe_customers WHERE customer_id IS NULL ORDER BY requested_at LIMIT 100"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                requested.Add((reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1)));
            }
        }

        var created = 0;
        foreach (var (tenant, name) in requested)
        {
            try
            {
                await EnsureAsync(tenant, name, cancellationToken);
                created++;
            }
            catch (Exception failure) when (failure is StripeException or Polly.ExecutionRejectedException || StripeGateway.IsTransient(failure))
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    throw;
                }

                LogCustomerFailed(failure, tenant);
            }
        }

        return created;
    }

    public async Task<string?> FindAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = MeterEventOutbox.Command(connection, null, "SELECT customer_id FROM stripe_customers WHERE tenant_id = @tenant");
        Database.AddParameter(command, "tenant", tenantId);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>All known customers by tenant, for reconciliation.</summary>
    public async Task<IReadOnlyDictionary<string, string>> AllAsync(CancellationToken cancellationToken = default)
    {
        var customers = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = MeterEventOutbox.Command(connection, null, "SELECT tenant_id, customer_id FROM stripe_customers WHERE customer_id IS NOT NULL");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            customers[reader.GetString(0)] = reader.GetString(1);
        }

        return customers;
    }

    public async Task<string> EnsureAsync(string tenantId, string? tenantName = null, CancellationToken cancellationToken = default)
    {
        if (await FindAsync(tenantId, cancellationToken) is { } known)
        {
            return known;
        }

        var (generation, startedAt) = await StartCreationAsync(tenantId, tenantName, cancellationToken);
        // The ledger restricts tenant ids to letters, digits, '-' and '_': nothing here can break out of the quotes.
        var found = await stripe.CallAsync(
            (client, token) => new CustomerService(client).SearchAsync(new CustomerSearchOptions { Query = $"metadata['tenant_id']:'{tenantId}'" }, null, token),
            cancellationToken);
        var customer = found.Data.OrderBy(c => c.Created).FirstOrDefault()
            ?? await CreateAsync(tenantId, tenantName, generation, startedAt, cancellationToken);

        await using (var connection = await database.OpenAsync(cancellationToken))
        await using (var command = MeterEventOutbox.Command(connection, null, """
            INSERT INTO stripe_customers (tenant_id, tenant_name, customer_id, requested_at, created_at) VALUES (@tenant, @name, @customer, @now, @now)
            ON CONFLICT (tenant_id) DO UPDATE SET customer_id = COALESCE(stripe_customers.customer_id, excluded.customer_id), created_at = COALESCE(stripe_customers.created_at, excluded.created_at)
            """))
        {
            Database.AddParameter(command, "tenant", tenantId);
            Database.AddParameter(command, "name", tenantName);
            Database.AddParameter(command, "customer", customer.Id);
            Database.AddParameter(command, "now", clock.GetUtcNow().ToUnixTimeSeconds());
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        var customerId = await FindAsync(tenantId, cancellationToken) ?? customer.Id;
        LogCustomerKnown(tenantId, customerId);
        foreach (var sink in sinks)
        {
            await sink.CustomerCreatedAsync(tenantId, customerId, cancellationToken);
        }

        return customerId;
    }

    /// <summary>Generation 1 is <c>customer:&lt;tenant&gt;</c>, so keys already used before generations existed still count.</summary>
    private static string IdempotencyKey(string tenantId, int generation) =>
        generation == 1 ? $"customer:{tenantId}" : string.Create(CultureInfo.InvariantCulture, $"customer:{tenantId}:{generation}");

    private async Task<Customer> CreateAsync(string tenantId, string? tenantName, int generation, long startedAt, CancellationToken cancellationToken)
    {
        try
        {
            return await stripe.CallAsync(
                (client, token) => new CustomerService(client).CreateAsync(
                    new CustomerCreateOptions
                    {
                        Name = tenantName ?? tenantId,
                        Description = $"Tenant {tenantId}",
                        Metadata = new Dictionary<string, string> { ["tenant_id"] = tenantId },
                    },
                    new RequestOptions { IdempotencyKey = IdempotencyKey(tenantId, generation) },
                    token),
                cancellationToken);
        }
        catch (StripeException replayed) when (StripeGateway.IsReplayed(replayed))
        {
            if (await ListCreatedSinceAsync(tenantId, startedAt - (long)ClockSkew.TotalSeconds, cancellationToken) is { } made)
            {
                return made;
            }

            // The failed create made no customer: the next generation's key, taken by one host for all.
            await database.ExecuteAsync(
                "UPDATE stripe_customers SET create_generation = @next, create_started_at = @now WHERE tenant_id = @tenant AND create_generation = @generation",
                cancellationToken,
                ("next", generation + 1),
                ("now", clock.GetUtcNow().ToUnixTimeSeconds()),
                ("tenant", tenantId),
                ("generation", generation));
            throw;
        }
    }

    /// <summary>The tenant's oldest customer created at or after <paramref name="since"/>, from the (consistent) list.</summary>
    private async Task<Customer?> ListCreatedSinceAsync(string tenantId, long since, CancellationToken cancellationToken) =>
        await stripe.CallAsync(
            async (client, token) =>
            {
                Customer? oldest = null;
                var list = new CustomerListOptions { Created = new DateRangeOptions { GreaterThanOrEqual = DateTimeOffset.FromUnixTimeSeconds(since).UtcDateTime }, Limit = 100 };
                await foreach (var customer in new CustomerService(client).ListAutoPagingAsync(list, null, token))
                {
                    if (customer.Metadata?.GetValueOrDefault("tenant_id") == tenantId)
                    {
                        oldest = customer;
                    }
                }

                return oldest;
            },
            cancellationToken);

    /// <summary>The key generation to create under, and when it was first used (recorded now if never).</summary>
    private async Task<(int Generation, long StartedAt)> StartCreationAsync(string tenantId, string? tenantName, CancellationToken cancellationToken)
    {
        var rows = await database.QueryAsync(
            """
            INSERT INTO stripe_customers (tenant_id, tenant_name, requested_at, create_started_at) VALUES (@tenant, @name, @now, @now)
            ON CONFLICT (tenant_id) DO UPDATE SET create_started_at = COALESCE(stripe_customers.create_started_at, excluded.create_started_at)
            RETURNING create_generation, create_started_at
            """,
            reader => (reader.GetInt32(0), reader.GetInt64(1)),
            cancellationToken,
            ("tenant", tenantId),
            ("name", tenantName),
            ("now", clock.GetUtcNow().ToUnixTimeSeconds()));
        return rows.Single();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Tenant {TenantId} is Stripe customer {CustomerId}")]
    private partial void LogCustomerKnown(string tenantId, string customerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not create the Stripe customer of tenant {TenantId}; retrying later")]
    private partial void LogCustomerFailed(Exception exception, string tenantId);
}

/// <summary>One Billing Meter per dimension, found by <c>event_name</c> or created once (idempotency key from the name).</summary>
public sealed class StripeMeters(Database database, StripeGateway stripe, Microsoft.Extensions.Options.IOptions<StripeBillingOptions> options)
{
    public async Task<string> EnsureAsync(string meter, CancellationToken cancellationToken = default)
    {
        await using (var connection = await database.OpenAsync(cancellationToken))
        await using (var command = MeterEventOutbox.Command(connection, null, "SELECT stripe_meter_id FROM stripe_meters WHERE meter = @meter"))
        {
            Database.AddParameter(command, "meter", meter);
            if (await command.ExecuteScalarAsync(cancellationToken) is string known)
            {
                return known;
            }
        }

        var settings = options.Value.MeterOptions(meter);
        var eventName = options.Value.EventName(meter);
        var existing = await FindAsync(eventName, cancellationToken);
        string meterId;
        try
        {
            meterId = existing ?? await CreateAsync(settings.DisplayName ?? meter, eventName, $"meter:{eventName}", cancellationToken);
        }
        catch (StripeException failed) when (StripeGateway.IsReplayed(failed) || IsAlreadyActive(failed))
        {
            // Stripe keeps one active meter per event name, so a create under a fresh key cannot make a second: it makes
            // the meter the failed create (whose 500 Stripe replays for a day) did not, or is refused because it exists.
            meterId = await FindAsync(eventName, cancellationToken) ?? await CreateAsync(settings.DisplayName ?? meter, eventName, $"meter:{eventName}:{Guid.NewGuid():N}", cancellationToken);
        }

        await using (var connection = await database.OpenAsync(cancellationToken))
        await using (var command = MeterEventOutbox.Command(connection, null, """
            INSERT INTO stripe_meters (meter, event_name, stripe_meter_id) VALUES (@meter, @event, @id) ON CONFLICT (meter) DO NOTHING
            """))
        {
            Database.AddParameter(command, "meter", meter);
            Database.AddParameter(command, "event", eventName);
            Database.AddParameter(command, "id", meterId);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        return meterId;
    }

    public async Task<IReadOnlyDictionary<string, string>> AllAsync(CancellationToken cancellationToken = default)
    {
        var meters = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = MeterEventOutbox.Command(connection, null, "SELECT meter, stripe_meter_id FROM stripe_meters");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            meters[reader.GetString(0)] = reader.GetString(1);
        }

        return meters;
    }

    private Task<string?> FindAsync(string eventName, CancellationToken cancellationToken) =>
        stripe.CallAsync((client, token) => FindActiveAsync(new global::Stripe.Billing.MeterService(client), eventName, token), cancellationToken);

    private async Task<string> CreateAsync(string displayName, string eventName, string idempotencyKey, CancellationToken cancellationToken) =>
        (await stripe.CallAsync(
            (client, token) => new global::Stripe.Billing.MeterService(client).CreateAsync(
                new global::Stripe.Billing.MeterCreateOptions
                {
                    DisplayName = displayName,
                    EventName = eventName,
                    DefaultAggregation = new global::Stripe.Billing.MeterDefaultAggregationOptions { Formula = "sum" },
                    CustomerMapping = new global::Stripe.Billing.MeterCustomerMappingOptions { Type = "by_id", EventPayloadKey = "stripe_customer_id" },
                    ValueSettings = new global::Stripe.Billing.MeterValueSettingsOptions { EventPayloadKey = "value" },
                },
                new RequestOptions { IdempotencyKey = idempotencyKey },
                token),
            cancellationToken)).Id;

    private static bool IsAlreadyActive(StripeException exception) =>
        exception.HttpStatusCode == System.Net.HttpStatusCode.BadRequest && exception.StripeError?.Code == "resource_already_exists";

    private static async Task<string?> FindActiveAsync(global::Stripe.Billing.MeterService meters, string eventName, CancellationToken cancellationToken)
    {
        await foreach (var meter in meters.ListAutoPagingAsync(new global::Stripe.Billing.MeterListOptions { Status = "active", Limit = 100 }, null, cancellationToken))
        {
            if (meter.EventName == eventName)
            {
                return meter.Id;
            }
        }

        return null;
    }
}
