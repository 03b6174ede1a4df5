using System.Diagnostics;

namespace ZcProxy.Tests.Proof;

/// <summary>
/// A fact that needs strace attached to another process: skipped, with the reason, when strace is not on PATH or
/// the kernel refuses ptrace attach (containers without CAP_SYS_PTRACE, Yama ptrace_scope). .ci/run installs strace,
/// so on CI these tests run.
/// </summary>
public sealed class StraceFactAttribute : FactAttribute
{
    public StraceFactAttribute()
    {
        if (StraceAvailability.SkipReason is { } reason) Skip = reason;
    }
}

internal static class StraceAvailability
{
    private static readonly Lazy<string?> Reason = new(Probe);

    public static string? SkipReason => Reason.Value;

    /// <summary>Attaches strace to a sibling `sleep`: the same relation the tests have to the proxy process.</summary>
    private static string? Probe()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "strace")).FirstOrDefault(File.Exists);
        if (path is null) return "strace is not on PATH (install it: apt-get install strace)";
        Process? sleeper = null, strace = null;
        try
        {
            sleeper = Process.Start(new ProcessStartInfo("sleep", "30") { UseShellExecute = false })!;
            var info = new ProcessStartInfo(path) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { "-e", "trace=none", "-o", "/dev/null", "-p", sleeper.Id.ToString() }) info.ArgumentList.Add(a);
            strace = Process.Start(info)!;
            var firstLine = strace.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult() ?? "";
            return firstLine.Contains("attached") ? null : $"strace cannot attach to another process (ptrace not permitted?): {firstLine}";
        }
        catch (Exception e) when (e is TimeoutException or System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return $"strace cannot attach to another process: {e.Message}";
        }
        finally
        {
            try { if (sleeper is { HasExited: false }) sleeper.Kill(); } catch (InvalidOperationException) { }
            try { if (strace is not null && !strace.WaitForExit(5000)) strace.Kill(); } catch (InvalidOperationException) { }
            sleeper?.Dispose();
            strace?.Dispose();
        }
    }
}
