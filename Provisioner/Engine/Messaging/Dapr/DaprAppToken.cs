using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Provisioner.Messaging.Dapr;

/// <summary>
/// daprd's app API token: the sidecar sends it as <c>dapr-api-token</c> on every call to the app, and the app's Dapr
/// endpoints (subscription list, topic routes) refuse calls without it. The token is required to start the Dapr
/// transport (<see cref="DaprTransportOptionsValidator"/>), and compared in constant time.
/// </summary>
public static class DaprAppToken
{
    public const string Variable = "APP_API_TOKEN";
    public const string Header = "dapr-api-token";

    public static TBuilder RequireDaprAppToken<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.AddEndpointFilter((context, next) =>
        {
            var expected = context.HttpContext.RequestServices.GetRequiredService<IOptions<DaprTransportOptions>>().Value.EffectiveAppApiToken;
            return Matches(expected, context.HttpContext.Request.Headers[Header].ToString())
                ? next(context)
                : ValueTask.FromResult<object?>(Results.Unauthorized());
        });
        return builder;
    }

    /// <summary>Fails closed: no token configured matches nothing.</summary>
    public static bool Matches(string? expected, string? presented) =>
        !string.IsNullOrEmpty(expected) && presented is not null
        && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(expected), Encoding.UTF8.GetBytes(presented));
}
