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
/// One Stripe customer per tenant, ever. Onboarding records the wish (<see cref="RequestAsync"/>) in the same database
/// as everything else; <see cref="EnsureAsync"/> then finds or creates the customer: first our own row, then Stripe's
/// search by the tenant id in metadata (covers a crash after Stripe answered but before our write, older than the
/// idempotency window), and only then a create whose idempotency key is derived from the tenant id (covers the same
/// crash within 24 h, when search may not show the new customer yet).
/// </summary>
public sealed partial class StripeCustomers(
    Database database,
    StripeGateway stripe,
    TimeProvider clock,
    IEnumerable<IStripeCustomerSink> sinks,
    ILogger<StripeCustomers> logger)
{
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

        // The ledger restricts tenant ids to letters, digits, '-' and '_': nothing here can break out of the quotes.
        var found = await stripe.CallAsync(
            (client, token) => new CustomerService(client).SearchAsync(new CustomerSearchOptions { Query = $"metadata['tenant_id']:'{tenantId}'" }, null, token),
            cancellationToken);
        var customer = found.Data.OrderBy(c => c.Created).FirstOrDefault()
            ?? await stripe.CallAsync(
                (client, token) => new CustomerService(client).CreateAsync(
                    new CustomerCreateOptions
                    {
                        Name = tenantName ?? tenantId,
                        Description = $"Tenant {tenantId}",
                        Metadata = new Dictionary<string, string> { ["tenant_id"] = tenantId },
                    },
                    new RequestOptions { IdempotencyKey = $"customer:{tenantId}" },
                    token),
                cancellationToken);

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
        var existing = await stripe.CallAsync(
            (client, token) => FindActiveAsync(new global::Stripe.Billing.MeterService(client), eventName, token),
            cancellationToken);
        var meterId = existing ?? (await stripe.CallAsync(
            (client, token) => new global::Stripe.Billing.MeterService(client).CreateAsync(
                new global::Stripe.Billing.MeterCreateOptions
                {
                    DisplayName = settings.DisplayName ?? meter,
                    EventName = eventName,
                    DefaultAggregation = new global::Stripe.Billing.MeterDefaultAggregationOptions { Formula = "sum" },
                    CustomerMapping = new global::Stripe.Billing.MeterCustomerMappingOptions { Type = "by_id", EventPayloadKey = "stripe_customer_id" },
                    ValueSettings = new global::Stripe.Billing.MeterValueSettingsOptions { EventPayloadKey = "value" },
                },
                new RequestOptions { IdempotencyKey = $"meter:{eventName}" },
                token),
            cancellationToken)).Id;

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
