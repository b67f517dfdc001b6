using Polly;
using Polly.Retry;
using Polly.Timeout;
using Provisioner.Deployments;

namespace Provisioner.Workers;

/// <summary>The resilience pipeline every deployment step runs in: a timeout per attempt inside retries of transient failures.</summary>
public static class ProvisioningPipeline
{
    public const string Name = "provisioner-step";

    /// <summary>Carries <see cref="DeploymentStep.Timeout"/> to the timeout strategy, so one pipeline serves steps of every length.</summary>
    public static readonly ResiliencePropertyKey<TimeSpan> StepTimeout = new("provisioner.step-timeout");

    private static readonly TimeSpan DefaultStepTimeout = TimeSpan.FromSeconds(60);

    public static void Configure(ResiliencePipelineBuilder builder)
    {
        builder
            .AddRetry(new RetryStrategyOptions
            {
                // Only what a backend says is worth retrying: a failure a person must act on fails at once.
                ShouldHandle = new PredicateBuilder().Handle<TransientDeploymentException>(),
                MaxRetryAttempts = 4,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
            })
            .AddTimeout(new TimeoutStrategyOptions
            {
                TimeoutGenerator = arguments => ValueTask.FromResult(
                    arguments.Context.Properties.TryGetValue(StepTimeout, out var timeout) ? timeout : DefaultStepTimeout),
            });
    }
}
