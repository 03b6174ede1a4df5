using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Process-wide counters and gauges, rendered in Prometheus text format by the admin listener.
/// Body bytes have a fixed, lock-free table because they are counted on the hot path.
/// </summary>
internal sealed class ProxyMetrics
{
    private static readonly string[] MechanismLabels = ["sendfile", "splice", "directio", "copy"];
    private static readonly string[] DirectionLabels = ["response", "request"];

    private readonly long[] _bodyBytes = new long[MechanismLabels.Length * DirectionLabels.Length];
    private readonly ConcurrentDictionary<(string Name, string Labels), Counter> _counters = new();
    private readonly ConcurrentDictionary<string, string> _help = new();
    private readonly ConcurrentDictionary<string, Func<IEnumerable<(string Labels, double Value)>>> _gauges = new();

    public void AddBodyBytes(BodyMechanism mechanism, BodyDirection direction, long bytes)
    {
        if (bytes > 0) Interlocked.Add(ref _bodyBytes[Index(mechanism, direction)], bytes);
    }

    public long GetBodyBytes(BodyMechanism mechanism, BodyDirection direction)
        => Interlocked.Read(ref _bodyBytes[Index(mechanism, direction)]);

    /// <summary>A labelled counter; keep the returned instance on hot paths instead of looking it up each time.</summary>
    public Counter Counter(string name, string help, params (string Key, string Value)[] labels)
    {
        _help.TryAdd(name, help);
        return _counters.GetOrAdd((name, FormatLabels(labels)), static _ => new Counter());
    }

    /// <summary>A gauge whose values are read when metrics are scraped.</summary>
    public void Gauge(string name, string help, Func<IEnumerable<((string Key, string Value)[] Labels, double Value)>> read)
    {
        _help[name] = help;
        _gauges[name] = () => read().Select(v => (FormatLabels(v.Labels), v.Value));
    }

    public void Gauge(string name, string help, Func<double> read) => Gauge(name, help, () => [([], read())]);

    public string RenderPrometheus()
    {
        var sb = new StringBuilder();
        sb.Append("# HELP zcproxy_body_bytes_total Body bytes by how they moved.\n# TYPE zcproxy_body_bytes_total counter\n");
        for (int m = 0; m < MechanismLabels.Length; m++)
            for (int d = 0; d < DirectionLabels.Length; d++)
                sb.Append(CultureInfo.InvariantCulture,
                    $"zcproxy_body_bytes_total{{mechanism=\"{MechanismLabels[m]}\",direction=\"{DirectionLabels[d]}\"}} {Interlocked.Read(ref _bodyBytes[m * DirectionLabels.Length + d])}\n");

        foreach (var group in _counters.GroupBy(c => c.Key.Name).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            AppendHeader(sb, group.Key, "counter");
            foreach (var c in group.OrderBy(c => c.Key.Labels, StringComparer.Ordinal))
                sb.Append(CultureInfo.InvariantCulture, $"{group.Key}{c.Key.Labels} {c.Value.Value}\n");
        }
        foreach (var (name, read) in _gauges.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            AppendHeader(sb, name, "gauge");
            foreach (var (labels, value) in read())
                sb.Append(CultureInfo.InvariantCulture, $"{name}{labels} {value}\n");
        }
        return sb.ToString();
    }

    private void AppendHeader(StringBuilder sb, string name, string type)
    {
        if (_help.TryGetValue(name, out var help)) sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n");
        sb.Append(CultureInfo.InvariantCulture, $"# TYPE {name} {type}\n");
    }

    private static int Index(BodyMechanism m, BodyDirection d) => (int)m * DirectionLabels.Length + (int)d;

    private static string FormatLabels((string Key, string Value)[] labels)
    {
        if (labels.Length == 0) return "";
        return "{" + string.Join(",", labels.Select(l => $"{l.Key}=\"{Escape(l.Value)}\"")) + "}";
    }

    private static string Escape(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
}

internal sealed class Counter
{
    private long _value;
    public long Value => Interlocked.Read(ref _value);
    public void Increment() => Interlocked.Increment(ref _value);
    public void Add(long n) => Interlocked.Add(ref _value, n);
}
