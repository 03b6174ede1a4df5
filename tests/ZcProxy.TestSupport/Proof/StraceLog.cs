using System.Globalization;
using System.Text.RegularExpressions;

namespace ZcProxy.Tests.Proof;

/// <summary>One completed system call from strace's per-call output: name, raw arguments and return value.</summary>
public sealed record StraceCall(int Pid, string Name, string Arguments, long Result)
{
    /// <summary>The arguments split at top-level commas (good enough for fd, NULL, length and flag arguments).</summary>
    public string Argument(int index) => Arguments.Split(", ")[index];
}

/// <summary>
/// strace -f -C output: per-call lines (calls interrupted by another thread's line are written as
/// "&lt;unfinished ...&gt;" and "&lt;... name resumed&gt;" and are joined here per pid) and the -c summary table.
/// </summary>
public sealed partial class StraceLog
{
    private StraceLog(IReadOnlyList<StraceCall> calls, IReadOnlyDictionary<string, long> summaryCalls, string summary)
    {
        Calls = calls;
        SummaryCalls = summaryCalls;
        Summary = summary;
    }

    public IReadOnlyList<StraceCall> Calls { get; }

    /// <summary>The "calls" column of the -c table, by syscall name.</summary>
    public IReadOnlyDictionary<string, long> SummaryCalls { get; }

    /// <summary>The -c table as strace printed it (for test output and reports).</summary>
    public string Summary { get; }

    public long CallsOf(string syscall) => SummaryCalls.GetValueOrDefault(syscall);

    /// <summary>Sum of the successful return values (bytes, for I/O calls) of the matching calls.</summary>
    public long BytesOf(Func<StraceCall, bool> predicate) => Calls.Where(c => c.Result > 0 && predicate(c)).Sum(c => c.Result);

    /// <summary>True when an fd argument, as decorated by -yy, is a TCP socket whose local port is <paramref name="port"/>.</summary>
    public static bool IsSocketWithLocalPort(string fdArgument, int port) => fdArgument.Contains($":{port}->", StringComparison.Ordinal);

    /// <summary>True when an fd argument, as decorated by -yy, is a TCP socket connected to remote port <paramref name="port"/>.</summary>
    public static bool IsSocketWithRemotePort(string fdArgument, int port)
        => fdArgument.Contains("->", StringComparison.Ordinal) && fdArgument.Contains($":{port}]", StringComparison.Ordinal);

    public static StraceLog Parse(IEnumerable<string> lines)
    {
        var calls = new List<StraceCall>();
        var pending = new Dictionary<int, string>();
        var summaryCalls = new Dictionary<string, long>();
        var summary = new List<string>();
        bool inSummary = false;
        foreach (var line in lines)
        {
            if (line.StartsWith("% time", StringComparison.Ordinal)) inSummary = true;
            if (inSummary)
            {
                summary.Add(line);
                var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                // percent, seconds, usecs/call, calls, [errors], syscall
                if (cols.Length is 5 or 6 && cols[^1] != "total" && long.TryParse(cols[3], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                    summaryCalls[cols[^1]] = n;
                continue;
            }
            var text = line;
            if (Unfinished().Match(text) is { Success: true } u)
            {
                pending[int.Parse(u.Groups[1].Value, CultureInfo.InvariantCulture)] = u.Groups[2].Value;
                continue;
            }
            if (Resumed().Match(text) is { Success: true } r)
            {
                int pid = int.Parse(r.Groups[1].Value, CultureInfo.InvariantCulture);
                if (!pending.Remove(pid, out var start)) continue; // began before strace attached
                text = $"{pid} {start}{r.Groups[3].Value}";
            }
            if (Complete().Match(text) is { Success: true } c)
                calls.Add(new StraceCall(int.Parse(c.Groups[1].Value, CultureInfo.InvariantCulture), c.Groups[2].Value, c.Groups[3].Value,
                    long.Parse(c.Groups[4].Value, CultureInfo.InvariantCulture)));
        }
        return new StraceLog(calls, summaryCalls, string.Join("\n", summary));
    }

    [GeneratedRegex(@"^(\d+) +(.*) <unfinished \.\.\.>$")]
    private static partial Regex Unfinished();

    [GeneratedRegex(@"^(\d+) +<\.\.\. (\w+) resumed>(.*)$")]
    private static partial Regex Resumed();

    [GeneratedRegex(@"^(\d+) +(\w+)\((.*)\) +=\s+(-?\d+)")]
    private static partial Regex Complete();
}
