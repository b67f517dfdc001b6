using System.Text.Json.Nodes;
using ControlPlane.Persistence;
using ControlPlane.Secrets;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Support;

/// <summary>
/// The platform's own password of an instance, as only the control plane holds it (sealed in the instance's stored
/// state): for tests that read the server's counters, which the customer's user may not (no INFO).
/// </summary>
public static class PlatformCredentials
{
    public static async Task<string> PasswordAsync(IServiceProvider services, string instanceId)
    {
        var database = services.GetRequiredService<Database>();
        var payload = (await database.QueryAsync(
            "SELECT payload FROM grain_state WHERE state_name = 'instance' AND grain_id LIKE @id;", row => row.GetString(0), CancellationToken.None, ("id", "%" + instanceId))).Single();
        var sealedValue = (string)JsonNode.Parse(payload)!["SealedPlatformPassword"]!;
        return await services.GetRequiredService<SecretEnvelopes>().OpenAsync(sealedValue, $"instance/{instanceId}/platform-password");
    }
}
