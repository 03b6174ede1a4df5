using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using ZcProxy.Core.Transport.Loops;
using Prom = Prometheus;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Process-wide counters, gauges and histograms, exposed in Prometheus text format by prometheus-net (the admin
/// listener's GET /metrics). Each metric family (a name with its help, type and label names) is declared exactly once:
/// a second declaration of a name throws, because two owners counting different things under one name would be
/// silently merged.
/// Counters are ours (<see cref="Counter"/>: one <see cref="Interlocked"/> add, no lock, no allocation, on the hot
/// path); their values are copied into prometheus-net's collectors just before each scrape, as are gauges read at
/// scrape time. Histograms are prometheus-net's own children (lock-free buckets), resolved once per label set.
/// Every family is also an instrument of the System.Diagnostics.Metrics meter <see cref="MeterName"/>, under the same
/// name, for an OpenTelemetry exporter (<see cref="OtlpExport"/>): counters and gauges as observable instruments read
/// only when something collects them, histograms recorded only while a listener has enabled them. With no listener
/// (no Telemetry section) the meter costs nothing per request.
/// </summary>
internal sealed class ProxyMetrics : IDisposable
{
    /// <summary>The meter every family is mirrored into (OpenTelemetry's AddMeter takes this name).</summary>
    public const string MeterName = "ZcProxy";

    private const string BodyBytesName = "zcproxy_body_bytes_total";
    private static readonly string[] MechanismLabels = ["sendfile", "splice", "directio", "copy"];
    private static readonly string[] DirectionLabels = ["response", "request"];

    // Counted per syscall on the loops: striped like every Counter.
    private readonly Counter[] _bodyBytes = [.. Enumerable.Range(0, MechanismLabels.Length * DirectionLabels.Length).Select(_ => new Counter())];
    private readonly Prom.CollectorRegistry _registry = Prom.Metrics.NewCustomRegistry();
    private readonly Prom.MetricFactory _factory;
    private readonly HashSet<string> _declared = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CounterFamily> _counters = new(StringComparer.Ordinal);
    private readonly List<Action> _beforeScrape = [];
    private readonly object _declareLock = new();
    private readonly Meter _meter = new(MeterName, typeof(ProxyMetrics).Assembly.GetName().Version?.ToString(3));

    public ProxyMetrics()
    {
        _factory = Prom.Metrics.WithCustomRegistry(_registry);
        // Exemplars (trace ids attached to samples) cost work on every increment; the text format does not carry them.
        _factory.ExemplarBehavior = Prom.ExemplarBehavior.NoExemplars();
        _registry.AddBeforeCollectCallback(BeforeScrape);

        // The body-bytes table is our own counters (counted per syscall); the family's series are set from it at scrape time.
        Prom.Counter bodyBytes;
        lock (_declareLock)
        {
            Declare(BodyBytesName);
            bodyBytes = _factory.CreateCounter(BodyBytesName, "Body bytes by how they moved.", ["mechanism", "direction"]);
        }
        var bodySeries = new Prom.Counter.Child[_bodyBytes.Length];
        for (int m = 0; m < MechanismLabels.Length; m++)
            for (int d = 0; d < DirectionLabels.Length; d++)
                bodySeries[m * DirectionLabels.Length + d] = bodyBytes.WithLabels(MechanismLabels[m], DirectionLabels[d]);
        OnScrape(() =>
        {
            for (int i = 0; i < bodySeries.Length; i++) bodySeries[i].IncTo(_bodyBytes[i].Value);
        });
        var bodyTags = new KeyValuePair<string, object?>[_bodyBytes.Length][];
        for (int m = 0; m < MechanismLabels.Length; m++)
            for (int d = 0; d < DirectionLabels.Length; d++)
                bodyTags[m * DirectionLabels.Length + d] = [new("mechanism", MechanismLabels[m]), new("direction", DirectionLabels[d])];
        _meter.CreateObservableCounter(BodyBytesName, () => bodyTags.Select((tags, i) => new Measurement<long>(_bodyBytes[i].Value, tags)),
            "By", "Body bytes by how they moved.");
    }

    /// <summary>The prometheus-net registry the families live in (the runtime-meter adapter publishes into it too).</summary>
    internal Prom.CollectorRegistry Registry => _registry;

    /// <summary>The factory that creates collectors in <see cref="Registry"/>, without exemplars.</summary>
    internal Prom.MetricFactory Factory => _factory;

    public void AddBodyBytes(BodyMechanism mechanism, BodyDirection direction, long bytes)
    {
        if (bytes > 0) _bodyBytes[Index(mechanism, direction)].Add(bytes);
    }

    public long GetBodyBytes(BodyMechanism mechanism, BodyDirection direction)
        => _bodyBytes[Index(mechanism, direction)].Value;

    /// <summary>Declares a counter family whose series are told apart by <paramref name="labelNames"/>.</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public CounterFamily Counters(string name, string help, params string[] labelNames)
    {
        lock (_declareLock)
        {
            Declare(name);
            var family = new CounterFamily(name, help, labelNames, _factory.CreateCounter(name, help, labelNames));
            _counters[name] = family;
            _beforeScrape.Add(family.CopyToCollector);
            _meter.CreateObservableCounter(name, family.Measurements, MeterUnit(name), help);
            return family;
        }
    }

    /// <summary>Declares a counter without labels; keep the returned instance instead of looking it up.</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public Counter Counter(string name, string help) => Counters(name, help).WithLabels();

    /// <summary>Declares a counter whose value is read when metrics are scraped (e.g. CPU seconds from /proc).</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public void ObservedCounter(string name, string help, Func<double> read)
    {
        Prom.Counter collector;
        lock (_declareLock)
        {
            Declare(name);
            collector = _factory.CreateCounter(name, help);
            _meter.CreateObservableCounter(name, read, MeterUnit(name), help);
        }
        OnScrape(() => collector.IncTo(read()));
    }

    /// <summary>Declares a gauge whose series (label values, in the order of <paramref name="labelNames"/>) are read when metrics are scraped.</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public void Gauge(string name, string help, string[] labelNames, Func<IEnumerable<(string[] LabelValues, double Value)>> read)
    {
        Prom.Gauge collector;
        lock (_declareLock)
        {
            Declare(name);
            collector = _factory.CreateGauge(name, help, labelNames);
            _meter.CreateObservableGauge(name, () => read().Select(r => new Measurement<double>(r.Value, Tags(labelNames, r.LabelValues))), MeterUnit(name), help);
        }
        OnScrape(() => GaugeSeries.Copy(collector, read()));
    }

    /// <summary>Declares a gauge without labels, read when metrics are scraped.</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public void Gauge(string name, string help, Func<double> read)
    {
        Prom.Gauge collector;
        lock (_declareLock)
        {
            Declare(name);
            collector = _factory.CreateGauge(name, help);
            _meter.CreateObservableGauge(name, read, MeterUnit(name), help);
        }
        OnScrape(() => collector.Set(read()));
    }

    /// <summary>Declares a histogram family (name ending in a base unit, e.g. <c>_seconds</c>); observe through its series.</summary>
    /// <exception cref="InvalidOperationException">The name is already declared.</exception>
    public HistogramFamily Histogram(string name, string help, double[] buckets, params string[] labelNames)
    {
        lock (_declareLock)
        {
            Declare(name);
            var prometheus = _factory.CreateHistogram(name, help, labelNames, new Prom.HistogramConfiguration { Buckets = buckets });
            var meter = _meter.CreateHistogram(name, MeterUnit(name), help, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });
            return new HistogramFamily(prometheus, meter, labelNames);
        }
    }

    /// <summary>Stops the meter's instruments (a listener still attached sees them end).</summary>
    public void Dispose() => _meter.Dispose();

    /// <summary>The UCUM unit OpenTelemetry expects, from the Prometheus name's base-unit suffix.</summary>
    internal static string? MeterUnit(string name)
    {
        var stem = name.EndsWith("_total", StringComparison.Ordinal) ? name[..^"_total".Length] : name;
        return stem.EndsWith("_seconds", StringComparison.Ordinal) ? "s" : stem.EndsWith("_bytes", StringComparison.Ordinal) ? "By" : null;
    }

    internal static KeyValuePair<string, object?>[] Tags(string[] names, string[] values)
    {
        var tags = new KeyValuePair<string, object?>[names.Length];
        for (int i = 0; i < names.Length; i++) tags[i] = new(names[i], i < values.Length ? values[i] : "");
        return tags;
    }

    /// <summary>The current value of a declared counter series (for diagnostics and tests); 0 for a series not counted yet.</summary>
    /// <exception cref="KeyNotFoundException">No counter family of that name is declared.</exception>
    public long CounterValue(string name, params (string Key, string Value)[] labels)
    {
        if (!_counters.TryGetValue(name, out var family)) throw new KeyNotFoundException($"no counter family '{name}' is declared");
        return family.Find(labels)?.Value ?? 0;
    }

    /// <summary>Every series of a declared counter family by its one label's value; empty when the family is not declared (e.g. no cache).</summary>
    public Dictionary<string, long> TryCounterValues(string name, string label)
    {
        if (!_counters.TryGetValue(name, out var family)) return [];
        return family.Series(label);
    }

    /// <summary>Writes every family in Prometheus text format (version 0.0.4).</summary>
    public Task WritePrometheusAsync(Stream output, CancellationToken cancellationToken)
        => _registry.CollectAndExportAsTextAsync(output, cancellationToken);

    public string RenderPrometheus()
    {
        using var buffer = new MemoryStream();
        WritePrometheusAsync(buffer, CancellationToken.None).GetAwaiter().GetResult();
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private void OnScrape(Action copy)
    {
        lock (_declareLock) _beforeScrape.Add(copy);
    }

    private void BeforeScrape()
    {
        Action[] copies;
        lock (_declareLock) copies = [.. _beforeScrape];
        foreach (var copy in copies) copy();
    }

    private void Declare(string name)
    {
        if (!_declared.Add(name))
            throw new InvalidOperationException($"metric family '{name}' is declared twice: each name must have one owner and one meaning (use a label to tell series apart)");
    }

    private static int Index(BodyMechanism m, BodyDirection d) => (int)m * DirectionLabels.Length + (int)d;
}

/// <summary>One declared counter family: its series, one per combination of label values.</summary>
internal sealed class CounterFamily
{
    private readonly string[] _labelNames;
    private readonly Prom.Counter _collector;
    private readonly ConcurrentDictionary<string, (Counter Counter, Prom.Counter.Child Child, KeyValuePair<string, object?>[] Tags)> _series = new(StringComparer.Ordinal);

    internal CounterFamily(string name, string help, string[] labelNames, Prom.Counter collector)
    {
        Name = name;
        Help = help;
        _labelNames = labelNames;
        _collector = collector;
    }

    public string Name { get; }
    public string Help { get; }

    /// <summary>The series for these label values (in the order of the family's label names); created on first use.</summary>
    public Counter WithLabels(params string[] values)
    {
        if (values.Length != _labelNames.Length)
            throw new ArgumentException($"metric family '{Name}' has labels [{string.Join(", ", _labelNames)}]; got {values.Length} value(s)", nameof(values));
        return _series.GetOrAdd(Key(values), static (_, state) => (new Counter(), state.Collector.WithLabels(state.Values), ProxyMetrics.Tags(state.Names, state.Values)),
            (Collector: _collector, Values: values, Names: _labelNames)).Counter;
    }

    internal Counter? Find((string Key, string Value)[] labels)
    {
        var values = _labelNames.Select(n => labels.FirstOrDefault(l => l.Key == n).Value ?? "").ToArray();
        return _series.TryGetValue(Key(values), out var s) ? s.Counter : null;
    }

    internal Dictionary<string, long> Series(string label)
    {
        int i = Array.IndexOf(_labelNames, label);
        if (i < 0) return [];
        return _series.ToDictionary(s => s.Key.Split('\u0001')[i], s => s.Value.Counter.Value, StringComparer.Ordinal);
    }

    internal void CopyToCollector()
    {
        foreach (var (_, (counter, child, _)) in _series) child.IncTo(counter.Value);
    }

    /// <summary>Every series' current value, for the meter's observable counter (read when an exporter collects).</summary>
    internal IEnumerable<Measurement<long>> Measurements() => _series.Values.Select(s => new Measurement<long>(s.Counter.Value, s.Tags));

    private static string Key(string[] values) => string.Join('\u0001', values);
}

/// <summary>One declared histogram family, in prometheus-net and in the meter; its series are resolved once per label set.</summary>
internal sealed class HistogramFamily(Prom.Histogram prometheus, Histogram<double> meter, string[] labelNames)
{
    /// <summary>The series for these label values (in the order of the family's label names); resolve it once, observe often.</summary>
    public HistogramSeries WithLabels(params string[] values) => new(prometheus.WithLabels(values), meter, ProxyMetrics.Tags(labelNames, values));
}

/// <summary>One histogram series: prometheus-net's lock-free buckets, and the meter's histogram while a listener enables it.</summary>
internal sealed class HistogramSeries(Prom.Histogram.Child prometheus, Histogram<double> meter, KeyValuePair<string, object?>[] tags)
{
    public void Observe(double value)
    {
        prometheus.Observe(value);
        if (meter.Enabled) meter.Record(value, tags);
    }
}

/// <summary>Copies a scrape-time reading into a labelled gauge, dropping series that are gone (a destination removed by a reload).</summary>
internal static class GaugeSeries
{
    public static void Copy(Prom.Gauge collector, IEnumerable<(string[] LabelValues, double Value)> reading)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (values, value) in reading)
        {
            collector.WithLabels(values).Set(value);
            seen.Add(string.Join('\u0001', values));
        }
        foreach (var values in collector.GetAllLabelValues().ToList())
            if (!seen.Contains(string.Join('\u0001', values))) collector.RemoveLabelled(values);
    }
}

/// <summary>
/// A counter series: one <see cref="Interlocked"/> operation per change, no lock, no allocation, on the writing
/// thread's own stripe (<see cref="LoopStripe"/>): the event loops count every proxied request (status class,
/// forwarding path, reused upstream connections) without writing a line the other loop writes; read summed.
/// </summary>
internal sealed class Counter
{
    private readonly PaddedLong[] _stripes = new PaddedLong[LoopStripe.ArrayLength];

    public long Value
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _stripes.Length; i++) sum += Interlocked.Read(ref _stripes[i].Value);
            return sum;
        }
    }

    public void Increment() => Interlocked.Increment(ref _stripes[LoopStripe.Current].Value);
    public void Add(long n) => Interlocked.Add(ref _stripes[LoopStripe.Current].Value, n);
}
