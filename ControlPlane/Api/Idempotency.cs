using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ControlPlane.Tenants;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace ControlPlane.Api;

/// <summary>
/// Reads the <c>Idempotency-Key</c> header and fingerprints the request it came with. The fingerprint
/// covers method, path and the parsed body re-serialized, so whitespace or field order do not make two
/// identical requests differ, while any change of value does.
/// </summary>
public static class Idempotency
{
    public const string HeaderName = "Idempotency-Key";

    public static IdempotencyKey? FromRequest(HttpContext context, object? body)
    {
        if (!context.Request.Headers.TryGetValue(HeaderName, out var values))
        {
            return null;
        }

        var key = values.ToString();
        if (values.Count != 1 || key.Length is 0 or > 255 || key.Any(c => c is < '!' or > '~'))
        {
            throw new RequestValidationException(new Dictionary<string, string[]>
            {
                [HeaderName] = ["Idempotency-Key must be one value of 1 to 255 visible ASCII characters, e.g. a UUID."],
            });
        }

        var json = context.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        var canonical = $"{context.Request.Method} {context.Request.Path}\n{(body is null ? "" : JsonSerializer.Serialize(body, body.GetType(), json))}";
        return new IdempotencyKey
        {
            Key = key,
            Fingerprint = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical))),
        };
    }
}
