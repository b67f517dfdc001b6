using Microsoft.AspNetCore.Http;

namespace FakeStripe;

/// <summary>
/// Idempotency as Stripe documents it for API v1: the status and body of the first request with a key are saved once
/// the endpoint has begun executing, success or failure (a 500 included), and every retry with the key replays them
/// for 24 hours. A request refused before it began (validation, a concurrent duplicate) saves nothing. The same key with
/// other parameters is refused; a duplicate while the first is still running is a 409.
/// </summary>
public sealed partial class FakeStripeServer
{
    public static readonly TimeSpan IdempotencyWindow = TimeSpan.FromHours(24);

    private readonly Dictionary<string, SavedResponse> _idempotency = new(StringComparer.Ordinal);
    private readonly HashSet<string> _idempotencyInFlight = new(StringComparer.Ordinal);

    private async Task<Answer> PostAsync(HttpContext context, string path, Dictionary<string, string> form, FaultKind fault)
    {
        string? key = context.Request.Headers["Idempotency-Key"];
        if (string.IsNullOrEmpty(key))
        {
            return await ExecutePostAsync(path, form, fault);
        }

        var fingerprint = Fingerprint(path, form);
        lock (_gate)
        {
            if (_idempotency.TryGetValue(key, out var saved) && Now - saved.At < (long)IdempotencyWindow.TotalSeconds)
            {
                if (saved.Fingerprint != fingerprint)
                {
                    return new Answer(400, Error(
                        "idempotency_error",
                        null,
                        $"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request.",
                        null));
                }

                Stats.Replayed(error: saved.Answer.Status >= 500);
                return saved.Answer with { Replayed = true };
            }

            if (!_idempotencyInFlight.Add(key))
            {
                return new Answer(409, Error("idempotency_error", null, "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please try again later.", null));
            }
        }

        try
        {
            var answer = await ExecutePostAsync(path, form, fault);
            if (answer.Status is (>= 200 and < 300) or >= 500)
            {
                lock (_gate)
                {
                    _idempotency[key] = new SavedResponse(fingerprint, answer, Now);
                }
            }

            return answer;
        }
        finally
        {
            lock (_gate)
            {
                _idempotencyInFlight.Remove(key);
            }
        }
    }

    private static string Fingerprint(string path, Dictionary<string, string> form) =>
        path + "?" + string.Join("&", form.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => $"{f.Key}={f.Value}"));

    private sealed record SavedResponse(string Fingerprint, Answer Answer, long At);
}
