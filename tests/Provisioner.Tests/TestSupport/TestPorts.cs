namespace Provisioner.Tests.TestSupport;

/// <summary>Instance ports for this project's tests: 22000–31999, below Linux's ephemeral range (32768+), apart from ControlPlane.Tests' 12000–20999.</summary>
public static class TestPorts
{
    private const int FirstTestPort = 22000;
    private const int TestPortSpan = 10000;
    private static int s_nextPort = FirstTestPort + (Random.Shared.Next(TestPortSpan / 100) * 100);

    public static (int First, int Last) Next(int count)
    {
        var first = Interlocked.Add(ref s_nextPort, count) - count;
        var start = FirstTestPort + ((first - FirstTestPort) % TestPortSpan);
        if (start + count - 1 >= FirstTestPort + TestPortSpan)
        {
            start = FirstTestPort;
        }

        return (start, start + count - 1);
    }
}
