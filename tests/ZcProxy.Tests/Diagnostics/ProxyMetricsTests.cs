using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Diagnostics;

public class ProxyMetricsTests
{
    [Fact]
    public void DeclaringACounterNameTwice_Throws()
    {
        var metrics = new ProxyMetrics();
        metrics.Counter("x_total", "one meaning");
        var e = Assert.Throws<InvalidOperationException>(() => metrics.Counter("x_total", "another meaning"));
        Assert.Contains("'x_total' is declared twice", e.Message);
    }

    [Fact]
    public void DeclaringAGaugeUnderACountersName_OrTheBodyBytesName_Throws()
    {
        var metrics = new ProxyMetrics();
        metrics.Counter("x_total", "a counter");
        Assert.Throws<InvalidOperationException>(() => metrics.Gauge("x_total", "a gauge", () => 1));
        Assert.Throws<InvalidOperationException>(() => metrics.Counter("zcproxy_body_bytes_total", "again"));
    }

    [Fact]
    public void AFamily_RendersOneHeader_AndOneLinePerLabelValue()
    {
        var metrics = new ProxyMetrics();
        var family = metrics.Counters("y_total", "by reason", "reason");
        family.WithLabels("b").Add(2);
        family.WithLabels("a").Increment();
        family.WithLabels("a").Increment();

        var text = metrics.RenderPrometheus();
        Assert.Single(text.Split('\n'), l => l == "# TYPE y_total counter");
        Assert.Contains("y_total{reason=\"a\"} 2\n", text);
        Assert.Contains("y_total{reason=\"b\"} 2\n", text);
        Assert.Equal(2, metrics.CounterValue("y_total", ("reason", "a")));
        Assert.Equal(0, metrics.CounterValue("y_total", ("reason", "never")));
        Assert.Throws<ArgumentException>(() => family.WithLabels("a", "extra"));
    }

    [Fact]
    public void DeclaringAHistogramOrGaugeUnderATakenName_Throws()
    {
        var metrics = new ProxyMetrics();
        metrics.Histogram("h_seconds", "a histogram", [0.1, 1], "route");
        Assert.Throws<InvalidOperationException>(() => metrics.Histogram("h_seconds", "again", [1]));
        Assert.Throws<InvalidOperationException>(() => metrics.Gauge("h_seconds", "a gauge", ["x"], () => []));
        Assert.Throws<InvalidOperationException>(() => metrics.ObservedCounter("h_seconds", "a counter", () => 1));
    }

    /// <summary>Body bytes are counted per syscall, counters per request, histograms per request: none may allocate.</summary>
    [Fact]
    public void HotPathIncrements_AllocateNothing()
    {
        var metrics = new ProxyMetrics();
        var counter = metrics.Counter("c_total", "a counter");
        var histogram = metrics.Histogram("d_seconds", "a histogram", [0.001, 0.01, 0.1, 1], "route", "cluster").WithLabels("r", "c");
        void Work(int n)
        {
            for (int i = 0; i < n; i++)
            {
                metrics.AddBodyBytes(BodyMechanism.Splice, BodyDirection.Response, 65536);
                counter.Increment();
                histogram.Observe(i * 0.0001);
            }
        }
        Work(1000); // warm up (JIT, lazy state)
        long before = GC.GetAllocatedBytesForCurrentThread();
        Work(100_000);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(101_000L * 65536, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response));
        Assert.Contains("zcproxy_body_bytes_total{mechanism=\"splice\",direction=\"response\"} " + (101_000L * 65536), metrics.RenderPrometheus());
    }

    [Fact]
    public void LabelledGauges_DropSeriesThatAreGone()
    {
        var metrics = new ProxyMetrics();
        var rows = new List<(string[], double)> { (["c", "a"], 1), (["c", "b"], 2) };
        metrics.Gauge("g", "per destination", ["cluster", "destination"], () => rows);
        Assert.Contains("g{cluster=\"c\",destination=\"b\"} 2", metrics.RenderPrometheus());
        rows.RemoveAt(1);
        var text = metrics.RenderPrometheus();
        Assert.Contains("g{cluster=\"c\",destination=\"a\"} 1", text);
        Assert.DoesNotContain("destination=\"b\"", text);
    }

    [Fact]
    public void ProcStat_FieldsAreReadAfterTheCommandName()
    {
        // A command name with spaces and parentheses must not shift the fields (man 5 proc).
        var stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 17 0 12345 1073741824 2048 18446744073709551615";
        var s = ZcProxy.Core.Diagnostics.ProcessMetrics.Parse(stat)!.Value;
        Assert.Equal((250, 50, 17, 1073741824d, 2048), (s.UserTicks, s.SystemTicks, s.Threads, s.VirtualBytes, s.RssPages));
    }
}
