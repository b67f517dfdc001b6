using Microsoft.Extensions.Logging;
using Polly;
using Polly.Registry;
using Polly.Timeout;
using Provisioner.Deployments;
using Provisioner.Messaging;

namespace Provisioner.Workers;

/// <summary>
/// Carries out provisioning commands: plans with the spec's backend, runs each step in the resilience
/// pipeline, observes the result and reports it as events. Commands for one instance run one at a time,
/// in arrival order; different instances run in parallel.
/// </summary>
public sealed class ProvisioningWorker(
    IEnumerable<IDeploymentBackend> backends,
    ResiliencePipelineProvider<string> pipelines,
    IProvisioningEventSink events,
    TimeProvider time,
    ILogger<ProvisioningWorker> logger)
{
    private const string InternalErrorMessage =
        "The provisioner hit an unexpected error; the details are in its log. Applying the same spec again is safe.";

    private readonly Dictionary<string, IDeploymentBackend> _backends = backends.ToDictionary(backend => backend.Name, StringComparer.Ordinal);
    private readonly ResiliencePipeline _pipeline = pipelines.GetPipeline(ProvisioningPipeline.Name);
    private readonly OperationCancellations _cancellations = new(time);
    private readonly Dictionary<string, InstanceLane> _lanes = new(StringComparer.Ordinal);

    /// <summary>
    /// Handles one command; never throws. <paramref name="stoppingToken"/> is host shutdown: work it stops
    /// is not reported, because the command is delivered again (by the bus, or by the control plane after a
    /// restart) and every step is idempotent.
    /// </summary>
    /// <returns>
    /// Whether the command's outcome reached the control plane. A transport that can redeliver (Dapr) asks
    /// for redelivery on <see cref="CommandOutcome.RetryLater"/>; the in-process one leaves it to the control
    /// plane's stall check.
    /// </returns>
    public async Task<CommandOutcome> HandleAsync(ProvisioningCommand command, CancellationToken stoppingToken)
    {
        try
        {
            switch (command)
            {
                case ApplyDeploymentCommand apply:
                    return await ApplyAsync(apply, stoppingToken);
                case CancelOperationCommand cancel:
                    RequestCancel(cancel);
                    return CommandOutcome.Done;
                default:
                    logger.LogWarning("Ignoring provisioning command of unknown type {CommandType}", command.GetType().Name);
                    return CommandOutcome.Done;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            logger.LogInformation(
                "Left {CommandType} for instance {InstanceId} unfinished because the host is stopping; it is delivered again",
                command.GetType().Name, command.InstanceId);
            return CommandOutcome.RetryLater;
        }
        catch (Exception exception)
        {
            logger.LogError(exception, "Handling {CommandType} for instance {InstanceId} failed", command.GetType().Name, command.InstanceId);
            return CommandOutcome.RetryLater;
        }
    }

    private void RequestCancel(CancelOperationCommand command)
    {
        if (command.OperationId is null)
        {
            logger.LogWarning("Ignoring a cancel without an operation id for instance {InstanceId}", command.InstanceId);
            return;
        }

        var outcome = _cancellations.Request(command.OperationId);
        logger.LogInformation(
            "Cancel of operation {OperationId} on instance {InstanceId} requested: {Outcome}", command.OperationId, command.InstanceId, outcome);
    }

    private async Task<CommandOutcome> ApplyAsync(ApplyDeploymentCommand command, CancellationToken stoppingToken)
    {
        // Taken before anything else awaits, so commands for one instance start in the order they arrived.
        using var lane = await EnterLaneAsync(command.InstanceId, stoppingToken);
        var spec = command.Spec;
        var execution = new Execution();
        if (!_backends.TryGetValue(spec.Backend, out var backend))
        {
            return await ReportOutcomeAsync(execution, command, Failed(command, "unknown-backend",
                $"This provisioner has no backend named '{spec.Backend}'. Available: {string.Join(", ", _backends.Keys.Order(StringComparer.Ordinal))}.",
                ObservedDeployment.Absent), stoppingToken);
        }

        // Only a person's operation can be cancelled; a rollback or a reconcile always runs to the end.
        using var operation = command is { Purpose: ApplyPurpose.Operation, OperationId: { } operationId }
            ? _cancellations.Begin(operationId, stoppingToken)
            : null;
        var token = operation?.Token ?? stoppingToken;
        var reportSteps = command.Purpose is ApplyPurpose.Operation or ApplyPurpose.Rollback;
        DeploymentStep? current = null;
        try
        {
            token.ThrowIfCancellationRequested();
            var plan = await backend.PlanAsync(spec, token);
            if (plan.Drift is not null)
            {
                logger.LogWarning("Instance {InstanceId} drifted from its spec: {Drift}", spec.InstanceId, plan.Drift);
            }

            var done = new List<string>(plan.Steps.Count);
            var pastPointOfNoReturn = false;
            for (var index = 0; index < plan.Steps.Count; index++)
            {
                current = plan.Steps[index];
                if (current.PointOfNoReturn && !pastPointOfNoReturn)
                {
                    operation?.EnterPointOfNoReturn();
                    pastPointOfNoReturn = true;
                }

                var stepToken = pastPointOfNoReturn ? stoppingToken : token;
                stepToken.ThrowIfCancellationRequested();
                var stepStartedAt = time.GetUtcNow();
                if (reportSteps)
                {
                    await PublishAsync(execution, command, StepStarted(command, index, plan.Steps.Count, current.Name, stepStartedAt), stoppingToken);
                }

                logger.LogInformation(
                    "Instance {InstanceId}, generation {Generation}: step {StepNumber}/{StepCount} {StepName}",
                    spec.InstanceId, spec.Generation, index + 1, plan.Steps.Count, current.Name);
                await RunStepAsync(current, stepToken);
                done.Add(current.Name);
                if (reportSteps)
                {
                    await PublishAsync(execution, command, StepCompleted(command, index, plan.Steps.Count, current.Name, stepStartedAt), stoppingToken);
                }
            }

            current = null;
            // A plan with nothing to do already looked as closely as an observation would: one health check, not two.
            var observed = plan.IsUpToDate && plan.Observed is { } seen ? seen : await backend.ObserveAsync(spec, stoppingToken);
            return await ReportOutcomeAsync(execution, command, new DeploymentApplied
            {
                InstanceId = command.InstanceId,
                OperationId = command.OperationId,
                Generation = spec.Generation,
                Purpose = command.Purpose,
                OccurredAt = time.GetUtcNow(),
                Observed = observed,
                Drift = plan.Drift,
                Repairs = command.Purpose == ApplyPurpose.Reconcile ? done : [],
            }, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            throw;
        }
        catch (OperationCanceledException) when (operation?.CancelRequested == true)
        {
            logger.LogInformation(
                "Operation {OperationId} on instance {InstanceId} cancelled before {StepName}",
                command.OperationId, spec.InstanceId, current?.Name ?? "its first step");
            return await ReportOutcomeAsync(execution, command, new DeploymentCancelled
            {
                InstanceId = command.InstanceId,
                OperationId = command.OperationId,
                Generation = spec.Generation,
                Purpose = command.Purpose,
                OccurredAt = time.GetUtcNow(),
                Observed = await ObserveAfterFailureAsync(backend, spec, stoppingToken),
            }, stoppingToken);
        }
        catch (DeploymentFailedException exception)
        {
            return await FailAsync(execution, command, backend, exception.Code, exception.Message, stoppingToken);
        }
        catch (TimeoutRejectedException) when (current is not null)
        {
            return await FailAsync(execution, command, backend, "step-timeout",
                $"Step '{current.Name}' did not finish within {current.Timeout.TotalSeconds:0} s.", stoppingToken);
        }
        catch (TransientDeploymentException exception) when (current is not null)
        {
            return await FailAsync(execution, command, backend, "retries-exhausted",
                $"Step '{current.Name}' kept failing after retries: {exception.Message}", stoppingToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            logger.LogError(exception,
                "Applying generation {Generation} to instance {InstanceId} failed unexpectedly at {StepName}",
                spec.Generation, spec.InstanceId, current?.Name ?? "planning");
            return await FailAsync(execution, command, backend, "internal-error", InternalErrorMessage, stoppingToken);
        }
    }

    private async Task RunStepAsync(DeploymentStep step, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            context.Properties.Set(ProvisioningPipeline.StepTimeout, step.Timeout);
            await _pipeline.ExecuteAsync(
                static async (context, step) => await step.ExecuteAsync(context.CancellationToken),
                context,
                step);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private async Task<CommandOutcome> FailAsync(
        Execution execution, ApplyDeploymentCommand command, IDeploymentBackend backend, string code, string message, CancellationToken stoppingToken)
    {
        logger.LogWarning(
            "Applying generation {Generation} to instance {InstanceId} failed ({ErrorCode}): {ErrorMessage}",
            command.Spec.Generation, command.InstanceId, code, message);
        return await ReportOutcomeAsync(
            execution,
            command,
            Failed(command, code, message, await ObserveAfterFailureAsync(backend, command.Spec, stoppingToken)),
            stoppingToken);
    }

    /// <summary>What exists after a failure or cancel; an observation that fails too must not hide the first error.</summary>
    private async Task<ObservedDeployment> ObserveAfterFailureAsync(
        IDeploymentBackend backend, DeploymentSpec spec, CancellationToken stoppingToken)
    {
        try
        {
            return await backend.ObserveAsync(spec, stoppingToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            logger.LogError(exception, "Observing instance {InstanceId} failed", spec.InstanceId);
            return ObservedDeployment.Absent with { Detail = "The deployment could not be observed; see the provisioner's log." };
        }
    }

    private DeploymentFailed Failed(ApplyDeploymentCommand command, string code, string message, ObservedDeployment observed) => new()
    {
        InstanceId = command.InstanceId,
        OperationId = command.OperationId,
        Generation = command.Spec.Generation,
        Purpose = command.Purpose,
        OccurredAt = time.GetUtcNow(),
        ErrorCode = code,
        ErrorMessage = message,
        Observed = observed,
    };

    private static DeploymentStepStarted StepStarted(ApplyDeploymentCommand command, int index, int count, string name, DateTimeOffset startedAt) => new()
    {
        InstanceId = command.InstanceId,
        OperationId = command.OperationId,
        Generation = command.Spec.Generation,
        Purpose = command.Purpose,
        OccurredAt = startedAt,
        StepNumber = index + 1,
        StepCount = count,
        StepName = name,
    };

    private DeploymentStepCompleted StepCompleted(ApplyDeploymentCommand command, int index, int count, string name, DateTimeOffset startedAt) => new()
    {
        InstanceId = command.InstanceId,
        OperationId = command.OperationId,
        Generation = command.Spec.Generation,
        Purpose = command.Purpose,
        OccurredAt = time.GetUtcNow(),
        StepNumber = index + 1,
        StepCount = count,
        StepName = name,
        StartedAt = startedAt,
    };

    /// <summary>Publishes how the execution ended; says to deliver the command again if the control plane may not have heard.</summary>
    private async Task<CommandOutcome> ReportOutcomeAsync(
        Execution execution, ApplyDeploymentCommand command, ProvisioningEvent outcome, CancellationToken stoppingToken) =>
        await PublishAsync(execution, command, outcome, stoppingToken) ? CommandOutcome.Done : CommandOutcome.RetryLater;

    private async Task<bool> PublishAsync(
        Execution execution, ApplyDeploymentCommand command, ProvisioningEvent provisioningEvent, CancellationToken stoppingToken)
    {
        provisioningEvent = provisioningEvent with { ExecutionId = execution.Id, Sequence = ++execution.Sequence };
        try
        {
            await events.PublishAsync(provisioningEvent, stoppingToken);
            return true;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            logger.LogError(exception,
                "Could not report {EventType} for instance {InstanceId}, operation {OperationId}; the command is delivered again or the next reconcile reports the state",
                provisioningEvent.GetType().Name, command.InstanceId, command.OperationId);
            return false;
        }
    }

    /// <summary>One run of one command: every event it publishes carries its id and the next number.</summary>
    private sealed class Execution
    {
        public string Id { get; } = Guid.NewGuid().ToString("N");

        public int Sequence { get; set; }
    }

    private async Task<IDisposable> EnterLaneAsync(string instanceId, CancellationToken cancellationToken)
    {
        InstanceLane lane;
        lock (_lanes)
        {
            if (!_lanes.TryGetValue(instanceId, out lane!))
            {
                lane = new InstanceLane();
                _lanes[instanceId] = lane;
            }

            lane.Users++;
        }

        try
        {
            await lane.Gate.WaitAsync(cancellationToken);
        }
        catch
        {
            LeaveLane(instanceId, lane, release: false);
            throw;
        }

        return new LaneLease(() => LeaveLane(instanceId, lane, release: true));
    }

    private void LeaveLane(string instanceId, InstanceLane lane, bool release)
    {
        if (release)
        {
            lane.Gate.Release();
        }

        lock (_lanes)
        {
            if (--lane.Users == 0)
            {
                _lanes.Remove(instanceId);
                lane.Gate.Dispose();
            }
        }
    }

    private sealed class InstanceLane
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public int Users { get; set; }
    }

    private sealed class LaneLease(Action release) : IDisposable
    {
        public void Dispose() => release();
    }
}

/// <summary>What became of a command, for a transport that can deliver it again.</summary>
public enum CommandOutcome
{
    /// <summary>Carried out (or refused) and reported; the message is consumed.</summary>
    Done,

    /// <summary>Not finished or not reported (host stopping, events not published): deliver it again; every step is idempotent.</summary>
    RetryLater,
}
