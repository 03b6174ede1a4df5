using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>
/// The real zcproxy executable as a child process (for signals, exit codes and systemd behaviour).
/// Output lines are collected; the process is killed by PID on dispose if still running.
/// </summary>
public sealed partial class ProxyProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<string> _errorLines = new();

    private ProxyProcess(Process process) => _process = process;

    public static string ExecutablePath => Path.Combine(AppContext.BaseDirectory, "zcproxy.dll");

    public int Pid => _process.Id;
    /// <summary>Every output line, stdout and stderr interleaved as they arrived.</summary>
    public IReadOnlyCollection<string> Lines => _lines;
    /// <summary>The stderr lines alone.</summary>
    public IReadOnlyCollection<string> ErrorLines => _errorLines;
    public string Output => string.Join("\n", _lines);
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <param name="launcher">A command that execs the rest of its arguments ("dotnet zcproxy.dll ..."), e.g. to pass
    /// inherited file descriptors; the process then keeps the launcher's pid.</param>
    /// <param name="workingDirectory">Where the process runs (default: the test's), e.g. to test the default config file.</param>
    public static ProxyProcess Start(IEnumerable<string> args, IDictionary<string, string>? environment = null, IReadOnlyList<string>? launcher = null,
        string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(launcher?[0] ?? "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        if (launcher is not null)
        {
            foreach (var a in launcher.Skip(1)) info.ArgumentList.Add(a);
            info.ArgumentList.Add("dotnet");
        }
        info.ArgumentList.Add(ExecutablePath);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("NOTIFY_SOCKET");
        info.Environment.Remove("JOURNAL_STREAM");
        info.Environment.Remove("LISTEN_FDS");
        info.Environment.Remove("LISTEN_PID");
        info.Environment.Remove("WATCHDOG_USEC");
        info.Environment.Remove("WATCHDOG_PID");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) info.Environment[k] = v;
        var process = new Process { StartInfo = info };
        var result = new ProxyProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) result._lines.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            result._lines.Enqueue(e.Data);
            result._errorLines.Enqueue(e.Data);
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    /// <summary>Runs to completion (bounded) and returns exit code and all output, e.g. for `zcproxy check`.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(params string[] args)
    {
        using var p = Start(args);
        await p.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (p.ExitCode, p.Output);
    }

    public async Task<Match> WaitForLineAsync(string pattern, TimeSpan? timeout = null)
    {
        var regex = new Regex(pattern);
        Match? found = null;
        try
        {
            await Poll.UntilAsync(() =>
            {
                foreach (var line in _lines)
                    if (regex.Match(line) is { Success: true } m) { found = m; return true; }
                if (_process.HasExited) throw new InvalidOperationException($"zcproxy exited ({_process.ExitCode}) before '{pattern}':\n{Output}");
                return false;
            }, $"output line matching '{pattern}'", timeout ?? TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException e) { throw new TimeoutException($"{e.Message}\n{Diagnosis()}", e); }
        return found!;
    }

    /// <summary>
    /// What a timed-out wait reports about the process: its kernel state (S sleeping, T stopped by a signal, t stopped by
    /// a tracer, D in uninterruptible I/O), its tracer, pending, blocked and caught signals, threads, and its last output.
    /// </summary>
    public string Diagnosis()
    {
        string[] wanted = ["State:", "Threads:", "TracerPid:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:"];
        string status;
        try
        {
            status = string.Join("; ", File.ReadLines($"/proc/{_process.Id}/status")
                .Where(l => wanted.Any(w => l.StartsWith(w, StringComparison.Ordinal)))
                .Select(l => string.Join(' ', l.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))));
        }
        catch (IOException e) { status = $"no /proc entry ({e.Message})"; }
        return $"pid {_process.Id}: {status}\nlast output:\n{string.Join("\n", _lines.TakeLast(30))}";
    }

    /// <summary>Waits for startup and returns the proxy and admin base URLs the process logged.</summary>
    public async Task<(string Proxy, string Admin)> WaitForListenersAsync()
    {
        var proxy = await WaitForLineAsync(@"proxy listening on (http://\S+)");
        var admin = await WaitForLineAsync(@"admin listening on (http://\S+)");
        return (proxy.Groups[1].Value, admin.Groups[1].Value);
    }

    public int CountLines(string pattern) => _lines.Count(l => Regex.IsMatch(l, pattern));

    public void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString()]);
        kill.WaitForExit();
    }

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        _process.WaitForExit(5000);
        _process.Dispose();
    }
}
