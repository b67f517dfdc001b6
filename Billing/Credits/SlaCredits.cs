using System.Globalization;
using Billing.Sla;
using Billing.Stripe;
using ControlPlane.Persistence;
using Microsoft.Extensions.Logging;
using Stripe;

namespace Billing.Credits;

public sealed record SlaCreditView(
    string AssessmentId,
    string TenantId,
    string InstanceId,
    string Month,
    long CreditMinorUnits,
    string Currency,
    string Status,
    string? StripeTransactionId);

public static class SlaCreditStatus
{
    public const string Computed = "computed";
    public const string Applied = "applied";
}

/// <summary>
/// Applies SLA credits to Stripe as customer balance transactions (a negative amount: a credit the next invoice
/// consumes), which suits metered billing better than a credit note against a finalized invoice. Each credit is
/// first recorded as computed, then applied with an idempotency key from the assessment id and the assessment id in
/// metadata; before creating, the customer's transactions are searched for that id, so a retry after the 24 h
/// idempotency window still cannot credit twice.
/// </summary>
public sealed partial class SlaCredits(
    Database database,
    StripeCustomers customers,
    StripeGateway stripe,
    TimeProvider clock,
    ILogger<SlaCredits> logger)
{
    /// <summary>Applies the month's credits not yet applied (one query tells which); answers how many it applied now.</summary>
    public async Task<int> ApplyMonthAsync(ISlaAssessmentSource source, DateOnly month, CancellationToken cancellationToken = default)
    {
        var done = (await ForMonthAsync(month, cancellationToken)).Where(credit => credit.Status == SlaCreditStatus.Applied)
            .Select(credit => credit.AssessmentId).ToHashSet(StringComparer.Ordinal);
        var applied = 0;
        foreach (var assessment in (await source.AssessmentsForMonthAsync(month, cancellationToken)).Where(a => !done.Contains(a.Id)))
        {
            if (await ApplyAsync(assessment, cancellationToken))
            {
                applied++;
            }
        }

        return applied;
    }

    /// <summary>Applies one assessment's credit; answers false when there was nothing (left) to apply.</summary>
    public async Task<bool> ApplyAsync(SlaAssessment assessment, CancellationToken cancellationToken = default)
    {
        if (assessment.CreditMinorUnits <= 0)
        {
            return false;
        }

        var recorded = await RecordComputedAsync(assessment, cancellationToken);
        if (recorded.CreditMinorUnits != assessment.CreditMinorUnits || recorded.Currency != assessment.Currency)
        {
            throw new InvalidOperationException(
                $"Assessment {assessment.Id} was recorded with a credit of {recorded.CreditMinorUnits} {recorded.Currency} and now says {assessment.CreditMinorUnits} {assessment.Currency}; assessments are immutable.");
        }

        if (recorded.Status == SlaCreditStatus.Applied)
        {
            return false;
        }

        var customerId = await customers.EnsureAsync(assessment.TenantId, cancellationToken: cancellationToken);
        var transaction = await FindAppliedAsync(customerId, assessment.Id, cancellationToken)
            ?? await stripe.CallAsync(
                (client, token) => new CustomerBalanceTransactionService(client).CreateAsync(
                    customerId,
                    new CustomerBalanceTransactionCreateOptions
                    {
                        Amount = -assessment.CreditMinorUnits,
                        Currency = assessment.Currency,
                        Description = string.Create(CultureInfo.InvariantCulture, $"SLA credit {assessment.CreditPercent}% for {assessment.InstanceId}, {assessment.Month:yyyy-MM} (uptime {assessment.UptimePercent}%)"),
                        Metadata = new Dictionary<string, string>
                        {
                            ["assessment_id"] = assessment.Id,
                            ["instance_id"] = assessment.InstanceId,
                            ["month"] = assessment.Month.ToString("yyyy-MM", CultureInfo.InvariantCulture),
                        },
                    },
                    new RequestOptions { IdempotencyKey = $"sla-credit:{assessment.Id}" },
                    token),
                cancellationToken);

        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = MeterEventOutbox.Command(connection, null, """
            UPDATE sla_credits SET status = 'applied', stripe_transaction_id = @transaction, applied_at = @now
            WHERE assessment_id = @id AND status = 'computed'
            """);
        Database.AddParameter(command, "transaction", transaction.Id);
        Database.AddParameter(command, "now", clock.GetUtcNow().ToUnixTimeSeconds());
        Database.AddParameter(command, "id", assessment.Id);
        await command.ExecuteNonQueryAsync(cancellationToken);
        LogApplied(assessment.Id, assessment.TenantId, transaction.Id);
        return true;
    }

    public async Task<IReadOnlyList<SlaCreditView>> ForMonthAsync(DateOnly month, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = MeterEventOutbox.Command(connection, null, $"{SelectColumns} WHERE month = @month ORDER BY tenant_id, assessment_id");
        Database.AddParameter(command, "month", month.ToString("yyyy-MM", CultureInfo.InvariantCulture));
        var credits = new List<SlaCreditView>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            credits.Add(Read(reader));
        }

        return credits;
    }

    private const string SelectColumns = "SELECT assessment_id, tenant_id, instance_id, month, credit_minor_units, currency, status, stripe_transaction_id FROM sla_credits";

    private static SlaCreditView Read(System.Data.Common.DbDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.GetString(2),
        reader.GetString(3),
        reader.GetInt64(4),
        reader.GetString(5),
        reader.GetString(6),
        reader.IsDBNull(7) ? null : reader.GetString(7));

    private async Task<SlaCreditView> RecordComputedAsync(SlaAssessment assessment, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using (var insert = MeterEventOutbox.Command(connection, null, """
            INSERT INTO sla_credits (assessment_id, tenant_id, instance_id, month, credit_minor_units, currency, status, computed_at)
            VALUES (@id, @tenant, @instance, @month, @credit, @currency, 'computed', @now)
            ON CONFLICT (assessment_id) DO NOTHING
            """))
        {
            Database.AddParameter(insert, "id", assessment.Id);
            Database.AddParameter(insert, "tenant", assessment.TenantId);
            Database.AddParameter(insert, "instance", assessment.InstanceId);
            Database.AddParameter(insert, "month", assessment.Month.ToString("yyyy-MM", CultureInfo.InvariantCulture));
            Database.AddParameter(insert, "credit", assessment.CreditMinorUnits);
            Database.AddParameter(insert, "currency", assessment.Currency);
            Database.AddParameter(insert, "now", clock.GetUtcNow().ToUnixTimeSeconds());
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var select = MeterEventOutbox.Command(connection, null, $"{SelectColumns} WHERE assessment_id = @id");
        Database.AddParameter(select, "id", assessment.Id);
        await using var reader = await select.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return Read(reader);
    }

    private async Task<CustomerBalanceTransaction?> FindAppliedAsync(string customerId, string assessmentId, CancellationToken cancellationToken) =>
        await stripe.CallAsync(
            async (client, token) =>
            {
                await foreach (var transaction in new CustomerBalanceTransactionService(client).ListAutoPagingAsync(customerId, new CustomerBalanceTransactionListOptions { Limit = 100 }, null, token))
                {
                    if (transaction.Metadata?.GetValueOrDefault("assessment_id") == assessmentId)
                    {
                        return transaction;
                    }
                }

                return null;
            },
            cancellationToken);

    [LoggerMessage(Level = LogLevel.Information, Message = "SLA credit {AssessmentId} of tenant {TenantId} applied as Stripe balance transaction {TransactionId}")]
    private partial void LogApplied(string assessmentId, string tenantId, string transactionId);
}
