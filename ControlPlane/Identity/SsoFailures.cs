namespace ControlPlane.Identity;

/// <summary>
/// An SSO sign-in (or a check of a provider) was refused. <see cref="Reason"/> is a stable code the sign-in page gets
/// as <c>?error=</c> and explains with <see cref="SsoFailures.Explain"/>; the message says more, for the log and the
/// audit record, and never holds a token or a secret.
/// </summary>
public sealed class SsoSignInException(string reason, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Reason { get; } = reason;
}

/// <summary>Every reason an SSO sign-in ends on the sign-in page, with the sentence a person reads there.</summary>
public static class SsoFailures
{
    private static readonly Dictionary<string, string> s_explanations = new(StringComparer.Ordinal)
    {
        ["sign-in-expired"] = "The sign-in took too long or was started in another browser. Start again.",
        ["state-mismatch"] = "The answer from your identity provider does not belong to the sign-in this browser started. Start again.",
        ["replayed"] = "This sign-in was already completed once. Start again.",
        ["provider-refused"] = "Your identity provider did not sign you in.",
        ["provider-unreachable"] = "Your organization's identity provider could not be reached. Try again in a minute.",
        ["issuer-mismatch"] = "Your organization's identity provider is misconfigured. Ask an owner of your organization to check its SSO settings.",
        ["provider-incomplete"] = "Your organization's identity provider is misconfigured. Ask an owner of your organization to check its SSO settings.",
        ["sso-disabled"] = "Single sign-on is turned off for your organization.",
        ["token-exchange-failed"] = "Your identity provider did not confirm the sign-in. Ask an owner of your organization to check the SSO client id and secret.",
        ["invalid-id-token"] = "The identity token from your provider could not be verified, so you were not signed in.",
        ["email-missing"] = "Your identity provider did not share your email address. Ask it to release the email claim.",
        ["email-not-verified"] = "Your identity provider says your email address is not verified.",
        ["domain-not-allowed"] = "Your email address's domain may not sign in through this organization's single sign-on.",
        ["account-beyond-tenant"] = "This account also has access outside your organization, which single sign-on cannot vouch for. Sign in with your password or a sign-in link.",
        ["secret-unreadable"] = "Your organization's SSO settings cannot be read on this server. Ask an owner of your organization to save the client secret again.",
        ["internal-error"] = "Something went wrong on our side. Try again in a minute.",
    };

    public static IReadOnlyCollection<string> Reasons => s_explanations.Keys;

    public static string Explain(string? reason) =>
        reason is not null && s_explanations.TryGetValue(reason, out var sentence) ? sentence : "The sign-in did not complete. Start again.";
}
