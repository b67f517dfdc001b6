namespace ControlPlane.Bench;

/// <summary>Something the benchmark needed did not happen (a create failed, a start timed out): the run is not valid.</summary>
public sealed class BenchmarkFailedException : Exception
{
    public BenchmarkFailedException()
    {
    }

    public BenchmarkFailedException(string message)
        : base(message)
    {
    }

    public BenchmarkFailedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
