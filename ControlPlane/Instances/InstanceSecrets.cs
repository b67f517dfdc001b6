using System.Security.Cryptography;
using ControlPlane.Secrets;
using Provisioner.Deployments;

namespace ControlPlane.Instances;

/// <summary>An instance's two passwords, open: the customer's and the platform's own (for probes and reloads).</summary>
public sealed record OpenedPasswords(Secret Customer, Secret Platform);

/// <summary>
/// An instance's passwords: sealed (<see cref="SecretEnvelopes"/>) in its stored state, open only in the grain's memory.
/// State stored before encryption holds the customer's password in plaintext and no platform password: <see cref="MigrateAsync"/>
/// seals the one and makes the other, and re-wraps both when the key set has a newer version, so the grain's next write
/// stores no plaintext and only current key versions.
/// </summary>
public sealed class InstanceSecrets(SecretEnvelopes envelopes)
{
    private (string Sealed, string Open)? _customer;
    private (string Sealed, string Open)? _platform;

    /// <summary>A new random password: 32 URL-safe characters (192 bits).</summary>
    public static string NewPassword() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>A new customer password for the instance, sealed (for a create or a rotation); stored by the caller.</summary>
    public Task<string> NewCustomerPasswordAsync(InstanceState state) => envelopes.SealAsync(NewPassword(), CustomerContext(state));

    /// <summary>A new platform password for the instance, sealed; stored by the caller.</summary>
    public Task<string> NewPlatformPasswordAsync(InstanceState state) => envelopes.SealAsync(NewPassword(), PlatformContext(state));

    /// <summary>Brings stored passwords to the current form; answers whether the state changed and must be written.</summary>
    public async Task<bool> MigrateAsync(InstanceState state)
    {
        var changed = false;
        if (state.Password is { Length: > 0 } plaintext)
        {
            state.SealedPassword = await envelopes.SealAsync(plaintext, CustomerContext(state));
            changed = true;
        }

        if (state.Password is not null)
        {
            state.Password = null;
            changed = true;
        }

        if (state.SealedPlatformPassword is null && state.SealedPassword is not null)
        {
            state.SealedPlatformPassword = await NewPlatformPasswordAsync(state);
            changed = true;
        }

        if (state.SealedPassword is { } customer && await envelopes.RewrapAsync(customer, CustomerContext(state)) is { } customerRewrapped)
        {
            state.SealedPassword = customerRewrapped;
            changed = true;
        }

        if (state.SealedPlatformPassword is { } platform && await envelopes.RewrapAsync(platform, PlatformContext(state)) is { } platformRewrapped)
        {
            state.SealedPlatformPassword = platformRewrapped;
            changed = true;
        }

        return changed;
    }

    /// <summary>The passwords the state holds, opened once per sealed value and kept in memory.</summary>
    /// <exception cref="SecretUnreadableException">A key version is missing or a value was altered.</exception>
    public async Task<OpenedPasswords> OpenAsync(InstanceState state)
    {
        _customer = await OpenAsync(_customer, state.SealedPassword, CustomerContext(state));
        _platform = await OpenAsync(_platform, state.SealedPlatformPassword, PlatformContext(state));
        return new OpenedPasswords(Secret.Of(_customer.Value.Open), Secret.Of(_platform.Value.Open));
    }

    private async Task<(string Sealed, string Open)> OpenAsync((string Sealed, string Open)? cached, string? sealedValue, string context) =>
        sealedValue is null ? ("", "")
        : cached is { } hit && hit.Sealed == sealedValue ? hit
        : (sealedValue, await envelopes.OpenAsync(sealedValue, context));

    private static string CustomerContext(InstanceState state) => $"instance/{state.Id}/password";

    private static string PlatformContext(InstanceState state) => $"instance/{state.Id}/platform-password";
}
