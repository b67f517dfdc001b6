using Microsoft.Extensions.Logging;

namespace Provisioner.Deployments;

/// <summary>
/// Where hosted instances physically run (local OS processes, Kubernetes, Azure). A backend never keeps
/// the desired state: it compares what exists with a <see cref="DeploymentSpec"/> and says what it
/// would take to converge, so the same call is right the first time, on a retry, and after a crash.
/// </summary>
public interface IDeploymentBackend
{
    /// <summary>The name instances and the catalog use for this backend, e.g. <c>local</c>.</summary>
    string Name { get; }

    /// <summary>The steps that bring the deployment from what exists now to <paramref name="desired"/>; none when it already matches.</summary>
    Task<DeploymentPlan> PlanAsync(DeploymentSpec desired, CancellationToken cancellationToken);

    /// <summary>What exists for the instance now, including an authenticated health check.</summary>
    Task<ObservedDeployment> ObserveAsync(DeploymentSpec desired, CancellationToken cancellationToken);
}

/// <param name="Drift">Why the deployment differs from the spec, for a person (e.g. "process 4242 exited with code 137"); null when it matches.</param>
/// <param name="Observed">
/// What planning saw, when it already looked as closely as <see cref="IDeploymentBackend.ObserveAsync"/> would (health
/// check included). For a plan without steps the worker reports it instead of observing again, so a steady-state
/// reconcile costs one health check, not two.
/// </param>
public sealed record DeploymentPlan(IReadOnlyList<DeploymentStep> Steps, string? Drift, ObservedDeployment? Observed = null)
{
    public static DeploymentPlan UpToDate { get; } = new([], null);

    public bool IsUpToDate => Steps.Count == 0;
}

/// <summary>
/// One idempotent unit of backend work. The worker runs it inside a resilience pipeline: it may run
/// again after a transient failure, so it must check what earlier attempts already did.
/// </summary>
/// <param name="Timeout">How long one attempt may take before it counts as failed.</param>
/// <param name="PointOfNoReturn">Once this step starts, the operation can no longer be cancelled (e.g. removing data).</param>
public sealed record DeploymentStep(
    string Name,
    Func<CancellationToken, Task> ExecuteAsync,
    TimeSpan Timeout,
    bool PointOfNoReturn = false);

/// <summary>A failure worth retrying: a port taken between check and bind, a file briefly locked.</summary>
public sealed class TransientDeploymentException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A failure a person must act on; <see cref="Exception.Message"/> says what happened and what to do.</summary>
public sealed class DeploymentFailedException(string code, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>A stable, machine-readable reason, e.g. <c>process-exited</c>, <c>startup-timeout</c>.</summary>
    public string Code { get; } = code;
}

/// <summary>TLS instances are served by the Local backend only, so far; the others refuse them rather than serve plaintext.</summary>
public static class DeploymentTls
{
    /// <exception cref="DeploymentFailedException">The spec asks for TLS (to run; removing one is fine).</exception>
    public static void RefuseUnsupported(DeploymentSpec desired, string backend)
    {
        if (desired.Tls && desired.Goal != DeploymentGoal.Absent)
        {
            throw new DeploymentFailedException(
                "tls-unsupported",
                $"The {backend} backend does not serve instances over TLS yet; create the instance without tls, or on the local backend.");
        }
    }
}

public static class DeploymentGenerations
{
    /// <summary>
    /// A newer generation than <paramref name="desired"/>'s is already deployed (<paramref name="deployed"/>): a late or
    /// repeated command must not undo it, so its plan is to do nothing. Says so in the log.
    /// </summary>
    public static bool IsSuperseded(DeploymentSpec desired, long? deployed, ILogger logger)
    {
        if (deployed is not { } recorded || recorded <= desired.Generation)
        {
            return false;
        }

        logger.LogInformation(
            "Ignoring generation {Generation} of instance {InstanceId}: generation {RecordedGeneration} is already deployed",
            desired.Generation, desired.InstanceId, recorded);
        return true;
    }
}
