using System.Collections.Concurrent;
using System.Diagnostics;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Proof;

/// <summary>
/// `strace -f -C -yy -e trace=... -o FILE -p PID` attached to a running process: -C gives both the per-call lines
/// (whose return values are byte counts, with fds decorated by -yy as sockets, pipes or paths) and the -c summary
/// table, printed when strace is stopped with SIGINT. The output file lives in its own directory, never in the
/// proxy's config directory: the proxy watches that with inotify, and every traced write would wake it up.
/// </summary>
public sealed class StraceSession : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stderr = new();
    private readonly string _directory;

    private StraceSession(Process process, string directory)
    {
        _process = process;
        _directory = directory;
    }

    private string OutputFile => Path.Combine(_directory, "strace.out");

    public static async Task<StraceSession> AttachAsync(int pid, string syscalls)
    {
        var directory = Path.Combine(Path.GetTempPath(), "zcproxy-strace-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        var info = new ProcessStartInfo("strace") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-f", "-C", "-yy", "-e", "trace=" + syscalls, "-e", "signal=none", "-o", Path.Combine(directory, "strace.out"), "-p", pid.ToString() })
            info.ArgumentList.Add(a);
        var process = new Process { StartInfo = info };
        var session = new StraceSession(process, directory);
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) session._stderr.Enqueue(e.Data); };
        process.Start();
        process.BeginErrorReadLine();
        // "strace: Process N attached with M threads" comes after every thread is seized: from then on nothing is missed.
        await Poll.UntilAsync(() =>
        {
            if (session._stderr.Any(l => l.Contains("attached"))) return true;
            if (process.HasExited) throw new InvalidOperationException("strace exited before attaching: " + string.Join("\n", session._stderr));
            return false;
        }, "strace to attach to every thread of the proxy", TimeSpan.FromSeconds(20));
        return session;
    }

    /// <summary>
    /// SIGINT makes strace detach, write the summary table and exit; then the output is parsed. <paramref name="recorded"/>:
    /// what the output must show before the stop. A call's bytes reach its peer at once, but strace writes the call's line
    /// only once it has handled the thread's stop at the call's exit: a stop before that (a loaded machine) detaches the
    /// thread with the call unrecorded. Waited for with bounded polling; if it never shows, the stop goes ahead and the
    /// caller's assertions say what is missing.
    /// </summary>
    public async Task<StraceLog> StopAsync(Func<StraceLog, bool>? recorded = null)
    {
        if (recorded is not null)
        {
            try { await Poll.UntilAsync(async () => recorded(StraceLog.Parse(await File.ReadAllLinesAsync(OutputFile))), "strace to record the calls"); }
            catch (TimeoutException) { }
        }
        using (var kill = Process.Start("kill", ["-INT", _process.Id.ToString()])) await kill.WaitForExitAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(cts.Token);
        return StraceLog.Parse(await File.ReadAllLinesAsync(OutputFile));
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) _process.Kill(); } catch (InvalidOperationException) { }
        _process.WaitForExit(5000);
        _process.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
