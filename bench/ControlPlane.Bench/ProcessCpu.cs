using System.Diagnostics;
using System.Globalization;

namespace ControlPlane.Bench;

/// <summary>
/// CPU time used so far (user + system, all threads), to tell work from waiting: on a shared 2-core machine
/// a start that takes longer but uses no more CPU was waiting for a core.
/// </summary>
internal static class ProcessCpu
{
    // /proc reports in USER_HZ, which Linux fixes at 100 for user space.
    private const double TicksPerSecond = 100;

    public static TimeSpan OfThisProcess()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime;
    }

    /// <summary>From /proc/&lt;pid&gt;/stat (10 ms resolution); null when the process is gone.</summary>
    public static TimeSpan? Of(int processId)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{processId}/stat");
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // Fields after the command name (which may hold spaces) start past the last ')'; utime and stime are fields 14 and 15.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / TicksPerSecond);
    }
}
