using System.Runtime.Versioning;
using System.Text;

namespace Provisioner.Local;

/// <summary>
/// Keeps an instance's process log bounded. The process appends to it directly (O_APPEND, no pipe
/// through the control plane), so it is cut the way logrotate's copytruncate does: the tail is copied
/// to <c>.1</c> and the file truncated in place; the process's next write lands at the new start. Each start
/// shifts the logs of earlier runs (<c>.1</c> → <c>.2</c> …), so a crash loop keeps the last words of several crashes.
/// </summary>
[SupportedOSPlatform("linux")]
internal static class InstanceLogFile
{
    /// <summary>At each start: the previous run's log becomes <c>.1</c> and older ones shift up, keeping <paramref name="keptRuns"/> of them.</summary>
    public static void Rotate(LocalInstancePaths paths, long maxBytes, int keptRuns)
    {
        if (!File.Exists(paths.Log) || new FileInfo(paths.Log).Length == 0)
        {
            return;
        }

        File.Delete(paths.PreviousLog(keptRuns));
        for (var runsAgo = keptRuns - 1; runsAgo >= 1; runsAgo--)
        {
            if (File.Exists(paths.PreviousLog(runsAgo)))
            {
                File.Move(paths.PreviousLog(runsAgo), paths.PreviousLog(runsAgo + 1));
            }
        }

        CopyTail(paths.Log, paths.PreviousLog(), maxBytes);
        File.WriteAllBytes(paths.Log, []);
    }

    /// <summary>Cuts the log when it has grown past <paramref name="maxBytes"/> while the process runs.</summary>
    public static void Bound(LocalInstancePaths paths, long maxBytes)
    {
        try
        {
            if (File.Exists(paths.Log) && new FileInfo(paths.Log).Length > maxBytes)
            {
                CopyTail(paths.Log, paths.PreviousLog(), maxBytes);
                using var log = new FileStream(paths.Log, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
                log.SetLength(0);
            }
        }
        catch (IOException)
        {
            // A log that cannot be cut now is cut at the next observation; it never fails an operation.
        }
    }

    /// <summary>The last lines of the log, for an error a person reads; <paramref name="secret"/> is masked should the process have printed it.</summary>
    public static string Tail(LocalInstancePaths paths, int lines, string secret) => Tail(paths.Log, lines, secret);

    /// <summary>The last lines of <paramref name="logFile"/>, masked and without stack frames or terminal codes.</summary>
    public static string Tail(string logFile, int lines, string secret)
    {
        try
        {
            using var log = new FileStream(logFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var length = Math.Min(log.Length, 16 * 1024);
            log.Seek(-length, SeekOrigin.End);
            var buffer = new byte[length];
            log.ReadExactly(buffer);
            var text = Encoding.UTF8.GetString(buffer);
            if (secret.Length > 0)
            {
                text = text.Replace(secret, "[redacted]", StringComparison.Ordinal);
            }

            // Stack frames say little to the person reading the error; the exception's own line says what went wrong.
            var last = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(line => !line.StartsWith("at ", StringComparison.Ordinal))
                .TakeLast(lines);
            return string.Join('\n', last.Select(StripTerminalCodes));
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return "";
        }
    }

    private static void CopyTail(string source, string destination, long maxBytes)
    {
        using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var output = new FileStream(destination, FileMode.Create, FileAccess.Write);
        // A fixed count: the process keeps appending while we copy.
        var count = Math.Min(input.Length, maxBytes);
        input.Seek(-count, SeekOrigin.End);
        var buffer = new byte[81920];
        while (count > 0 && input.Read(buffer, 0, (int)Math.Min(buffer.Length, count)) is var read and > 0)
        {
            output.Write(buffer, 0, read);
            count -= read;
        }
    }

    // Garnet colours its banner; escape sequences make an error message unreadable.
    private static string StripTerminalCodes(string line) =>
        System.Text.RegularExpressions.Regex.Replace(line, @"\x1B\[[0-9;]*[A-Za-z]", "");
}
