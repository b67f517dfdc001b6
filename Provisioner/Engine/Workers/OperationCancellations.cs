namespace Provisioner.Workers;

/// <summary>
/// Which operations a person asked to cancel. A cancel may arrive before its Apply (both travel
/// at-least-once and may overtake each other), so requests are remembered for a while and an Apply
/// that starts later finds its own.
/// </summary>
internal sealed class OperationCancellations(TimeProvider time)
{
    private static readonly TimeSpan RequestLifetime = TimeSpan.FromHours(1);

    private readonly Lock _lock = new();
    private readonly Dictionary<string, CancellableOperation> _running = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _requested = new(StringComparer.Ordinal);

    public CancellableOperation Begin(string operationId, CancellationToken stoppingToken)
    {
        lock (_lock)
        {
            var operation = new CancellableOperation(() => End(operationId), stoppingToken);
            _running[operationId] = operation;
            if (_requested.ContainsKey(operationId))
            {
                operation.RequestCancel();
            }

            return operation;
        }
    }

    /// <summary>Records the request and cancels the operation if it runs; says what became of it, for the log.</summary>
    public string Request(string operationId)
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            foreach (var expired in _requested.Where(request => now - request.Value > RequestLifetime).Select(request => request.Key).ToList())
            {
                _requested.Remove(expired);
            }

            _requested[operationId] = now;
            if (!_running.TryGetValue(operationId, out var operation))
            {
                return "not running yet; it will be cancelled when it starts";
            }

            return operation.RequestCancel()
                ? "cancelling at the next safe point"
                : "past its point of no return; it will complete";
        }
    }

    private void End(string operationId)
    {
        lock (_lock)
        {
            _running.Remove(operationId);
        }
    }
}

/// <summary>One running operation's cancellation: linked to host shutdown, and ignored once a point of no return starts.</summary>
internal sealed class CancellableOperation : IDisposable
{
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _cancellation;
    private readonly Action _onDispose;
    private bool _pastPointOfNoReturn;

    public CancellableOperation(Action onDispose, CancellationToken stoppingToken)
    {
        _cancellation = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        _onDispose = onDispose;
    }

    public CancellationToken Token => _cancellation.Token;

    public bool CancelRequested { get; private set; }

    /// <returns>False when the operation is past its point of no return and will not stop.</returns>
    public bool RequestCancel()
    {
        lock (_lock)
        {
            if (_pastPointOfNoReturn)
            {
                return false;
            }

            CancelRequested = true;
            _cancellation.Cancel();
            return true;
        }
    }

    /// <summary>From here on the operation completes; a cancel requested before this point still wins.</summary>
    public void EnterPointOfNoReturn()
    {
        lock (_lock)
        {
            Token.ThrowIfCancellationRequested();
            _pastPointOfNoReturn = true;
        }
    }

    public void Dispose()
    {
        _onDispose();
        _cancellation.Dispose();
    }
}
