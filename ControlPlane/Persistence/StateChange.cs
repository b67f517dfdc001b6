using System.Text.Json;

namespace ControlPlane.Persistence;

/// <summary>
/// A change of a grain's persistent state that either is stored or never happened. It keeps what was stored (as the
/// storage writes it) aside before the change; when the write fails (a locked or full file, a database that is down,
/// another activation's newer write), the state in memory is put back exactly as it was, and the caller gets a
/// <see cref="StoreUnavailableException"/> instead of a grain that believes something nobody stored.
/// </summary>
public sealed class StateChange<T>
    where T : class, new()
{
    private readonly IPersistentState<T> _state;
    private readonly byte[]? _before;

    internal StateChange(IPersistentState<T> state)
    {
        _state = state;
        _before = state.RecordExists ? JsonSerializer.SerializeToUtf8Bytes(state.State, JsonGrainStorage.JsonOptions) : null;
    }

    /// <summary>Puts back what was stored when the change began (a record that did not exist stays absent).</summary>
    public void Undo() => _state.State = _before is null ? new T() : JsonSerializer.Deserialize<T>(_before, JsonGrainStorage.JsonOptions) ?? new T();

    /// <summary>Stores the changed state; on failure undoes the change, runs <paramref name="undoMore"/>, and throws.</summary>
    /// <exception cref="StoreUnavailableException">Nothing was stored and nothing changed; the inner exception says why.</exception>
    public async Task WriteAsync(Action? undoMore = null)
    {
        try
        {
            await _state.WriteStateAsync();
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            Undo();
            undoMore?.Invoke();
            throw new StoreUnavailableException($"The change could not be stored: {exception.Message}", exception);
        }
    }
}

public static class StateChange
{
    /// <summary>Call before the first change to <paramref name="state"/>.</summary>
    public static StateChange<T> Begin<T>(IPersistentState<T> state)
        where T : class, new() => new(state);
}

/// <summary>The state store did not take a write; nothing changed. Retrying later is safe (the API answers 503 with Retry-After).</summary>
/// <remarks>
/// The store's own exception stays in <see cref="Cause"/>, on the side that saw it, for its log: it does not cross a grain
/// call (a driver's exception type has no Orleans codec), only its message does.
/// </remarks>
[GenerateSerializer]
public sealed class StoreUnavailableException : Exception
{
    [NonSerialized]
    private readonly Exception? _cause;

    public StoreUnavailableException(string message, Exception cause)
        : base(message)
    {
        _cause = cause;
        StaleActivation = cause is Orleans.Storage.InconsistentStateException;
    }

    /// <summary>Why the store refused, where the refusal happened; null once the exception has crossed a grain call.</summary>
    public Exception? Cause => _cause;

    /// <summary>Another activation stored a newer version (a failover race): this activation must go, not retry.</summary>
    [Id(0)]
    public bool StaleActivation { get; init; }
}
