using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Process-wide counters and gauges, rendered in Prometheus text format by the admin listener.
/// Each metric family (a name with its help, type and label names) is declared exactly once: a second declaration
/// of a name throws, because two owners counting different things under one name would be silently merged.
/// Body bytes have a fixed, lock-free table because they are counted on the hot path.
/// </summary>
internal sealed class ProxyMetrics
{
    private const string BodyBytesName = "zcproxy_body_bytes_total";
    private static readonly string[] MechanismLabels = ["sendfile", "splice", "directio", "copy"];
    private static readonly string[] DirectionLabels = ["response", "request"];

    private readonly long[] _bodyBytes = new long[MechanismLabels.Length * DirectionLabels.Length];
    private readonly ConcurrentDictionary<string, CounterFamily> _counters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (string Help, Func<IEnumerable<(string Labels, double Value)>> Read)> _gauges = new(StringComparer.Ordinal);
    private readonly object _declareLock = new();

    public void AddBodyBytes(BodyMechanism mechanism, BodyDirection direction, long bytes)
    {
        if (bytes > 0) Interlocked.Add(ref _bodyBytes[Index(mechanism, direction)], bytes);
    }

    public long GetBodyBytes(BodyMechanism mechanism, BodyDirection direction)
        => Interlocked.Read(ref _bodyBytes[Index(mechanism, direction)]);

    /// <summary>Declares a counter family whose series are told apart by <paramref name="labelNames"/>.</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public CounterFamily Counters(string name, string help, params string[] labelNames)
    {
        var family = new CounterFamily(name, help, labelNames);
        lock (_declareLock)
        {
            EnsureUndeclared(name);
            _counters[name] = family;
        }
        return family;
    }

    /// <summary>Declares a counter without labels; keep the returned instance instead of looking it up.</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public Counter Counter(string name, string help) => Counters(name, help).WithLabels();

    /// <summary>Declares a gauge whose values are read when metrics are scraped.</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public void Gauge(string name, string help, Func<IEnumerable<((string Key, string Value)[] Labels, double Value)>> read)
    {
        lock (_declareLock)
        {
            EnsureUndeclared(name);
            _gauges[name] = (help, () => read().Select(v => (FormatLabels(v.Labels), v.Value)));
        }
    }

    /// <inheritdoc cref="Gauge(string, string, Func{IEnumerable{ValueTuple{ValueTuple{string, string}[], double}}})"/>
    public void Gauge(string name, string help, Func<double> read) => Gauge(name, help, () => [([], read())]);

    /// <summary>The current value of a declared counter series (for diagnostics and tests); 0 for a series not counted yet.</summary>
    /// <exception cref="KeyNotFoundException">No counter family of that name is declared.</exception>
    public long CounterValue(string name, params (string Key, string Value)[] labels)
    {
        if (!_counters.TryGetValue(name, out var family)) throw new KeyNotFoundException($"no counter family '{name}' is declared");
        return family.Find(FormatLabels(labels))?.Value ?? 0;
    }

    public string RenderPrometheus()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {BodyBytesName} Body bytes by how they moved.\n# TYPE {BodyBytesName} counter\n");
        for (int m = 0; m < MechanismLabels.Length; m++)
            for (int d = 0; d < DirectionLabels.Length; d++)
                sb.Append(CultureInfo.InvariantCulture,
                    $"{BodyBytesName}{{mechanism=\"{MechanismLabels[m]}\",direction=\"{DirectionLabels[d]}\"}} {Interlocked.Read(ref _bodyBytes[m * DirectionLabels.Length + d])}\n");

        foreach (var (name, family) in _counters.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            AppendHeader(sb, name, family.Help, "counter");
            foreach (var (labels, counter) in family.Series.OrderBy(s => s.Labels, StringComparer.Ordinal))
                sb.Append(CultureInfo.InvariantCulture, $"{name}{labels} {counter.Value}\n");
        }
        foreach (var (name, gauge) in _gauges.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            AppendHeader(sb, name, gauge.Help, "gauge");
            foreach (var (labels, value) in gauge.Read())
                sb.Append(CultureInfo.InvariantCulture, $"{name}{labels} {value}\n");
        }
        return sb.ToString();
    }

    private void EnsureUndeclared(string name)
    {
        if (name == BodyBytesName || _counters.ContainsKey(name) || _gauges.ContainsKey(name))
            throw new InvalidOperationException($"metric family '{name}' is declared twice: each name must have one owner and one meaning (use a label to tell series apart)");
    }

    private static void AppendHeader(StringBuilder sb, string name, string help, string type)
        => sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n");

    private static int Index(BodyMechanism m, BodyDirection d) => (int)m * DirectionLabels.Length + (int)d;

    internal static string FormatLabels((string Key, string Value)[] labels)
    {
        if (labels.Length == 0) return "";
        return "{" + string.Join(",", labels.Select(l => $"{l.Key}=\"{Escape(l.Value)}\"")) + "}";
    }

    private static string Escape(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
}

/// <summary>One declared counter family: its series, one per combination of label values.</summary>
internal sealed class CounterFamily(string name, string help, string[] labelNames)
{
    private readonly ConcurrentDictionary<string, Counter> _series = new(StringComparer.Ordinal);

    public string Name { get; } = name;
    public string Help { get; } = help;

    /// <summary>The series for these label values (in the order of the family's label names); created on first use.</summary>
    public Counter WithLabels(params string[] values)
    {
        if (values.Length != labelNames.Length)
            throw new ArgumentException($"metric family '{Name}' has labels [{string.Join(", ", labelNames)}]; got {values.Length} value(s)", nameof(values));
        var labels = ProxyMetrics.FormatLabels(labelNames.Zip(values).ToArray());
        return _series.GetOrAdd(labels, static _ => new Counter());
    }

    internal Counter? Find(string formattedLabels) => _series.GetValueOrDefault(formattedLabels);

    internal IEnumerable<(string Labels, Counter Counter)> Series => _series.Select(s => (s.Key, s.Value));
}

internal sealed class Counter
{
    private long _value;
    public long Value => Interlocked.Read(ref _value);
    public void Increment() => Interlocked.Increment(ref _value);
    public void Add(long n) => Interlocked.Add(ref _value, n);
}
