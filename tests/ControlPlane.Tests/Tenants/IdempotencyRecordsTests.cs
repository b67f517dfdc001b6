using System.Globalization;
using ControlPlane.Api;
using ControlPlane.Errors;
using ControlPlane.Tenants;

namespace ControlPlane.Tests.Tenants;

public sealed class IdempotencyRecordsTests
{
    private static readonly DateTimeOffset s_now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_scope_remembers_a_bounded_number_of_keys_and_refuses_a_new_one_beyond_it_until_the_oldest_is_forgotten()
    {
        var records = new Dictionary<string, IdempotencyRecord>(StringComparer.Ordinal);
        for (var i = 0; i < IdempotencyRecords.MaxRemembered; i++)
        {
            records[$"key-{i}"] = new IdempotencyRecord($"fp-{i}", "ins-1", $"op-{i}", s_now.AddHours(-1).AddSeconds(i * 0.1));
        }

        // A remembered key still answers as before; a new one is refused, without forgetting a live key to make room.
        Assert.Equal("op-7", records.Replay(Key("key-7", "fp-7"), s_now)!.OperationId);
        var refused = Assert.Throws<ControlPlaneException>(() => records.Replay(Key("key-new", "fp-new"), s_now));
        Assert.Equal(429, ProblemResponses.StatusFor(refused.Kind));
        Assert.Equal("too-many-idempotency-keys", refused.Type);
        Assert.Equal((23 * 3600).ToString(CultureInfo.InvariantCulture), refused.Extensions["retryAfterSeconds"]);
        Assert.Equal(IdempotencyRecords.MaxRemembered, records.Count);

        // Once the oldest are past the window, they are forgotten and a new key is taken.
        Assert.Null(records.Replay(Key("key-new", "fp-new"), s_now.AddHours(23).AddSeconds(1)));
        Assert.True(records.Count < IdempotencyRecords.MaxRemembered);
    }

    private static IdempotencyKey Key(string key, string fingerprint) => new() { Key = key, Fingerprint = fingerprint };
}
