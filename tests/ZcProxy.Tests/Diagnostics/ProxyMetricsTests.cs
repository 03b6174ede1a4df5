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
        Assert.Contains("y_total{reason=\"a\"} 2\ny_total{reason=\"b\"} 2\n", text);
        Assert.Equal(2, metrics.CounterValue("y_total", ("reason", "a")));
        Assert.Equal(0, metrics.CounterValue("y_total", ("reason", "never")));
        Assert.Throws<ArgumentException>(() => family.WithLabels("a", "extra"));
    }
}
