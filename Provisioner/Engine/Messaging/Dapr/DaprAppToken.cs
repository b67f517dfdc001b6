using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Provisioner.Messaging.Dapr;

/// <summary>
/// daprd's app API token: when the sidecar is given APP_API_TOKEN it sends it as <c>dapr-api-token</c> on every call
/// to the app, and the app's Dapr endpoints (subscription list, topic routes) refuse calls without it. Without a
/// token configured (a developer machine, the tests) they accept any caller, as daprd's own apps do.
/// </summary>
public static class DaprAppToken
{
    public const string Variable = "APP_API_TOKEN";
    public const string Header = "dapr-api-token";

    public static TBuilder RequireDaprAppToken<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        var token = Environment.GetEnvironmentVariable(Variable);
        builder.AddEndpointFilter((context, next) =>
            string.IsNullOrEmpty(token) || context.HttpContext.Request.Headers[Header] == token
                ? next(context)
                : ValueTask.FromResult<object?>(Results.Unauthorized()));
        return builder;
    }
}
