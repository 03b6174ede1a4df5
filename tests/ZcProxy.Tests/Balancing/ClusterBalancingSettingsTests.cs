using ZcProxy.Core.Balancing;

namespace ZcProxy.Tests.Balancing;

public class ClusterBalancingSettingsTests
{
    private static ClusterBalancingSettings Parse(params (string Key, string Value)[] metadata)
    {
        var errors = new List<string>();
        var settings = ClusterBalancingSettings.Parse(metadata.ToDictionary(m => m.Key, m => m.Value), (key, message) => errors.Add($"{key}: {message}"));
        Assert.Empty(errors);
        return settings;
    }

    [Fact]
    public void Defaults_AreNginxs_NextUpstreamOnErrorAndTimeout_EveryDestinationOnce_MaxFails1For10s()
    {
        var s = Parse(("HashKey", "ClientIp")); // some unrelated metadata: the rest stays default
        Assert.True(s.RetryOnError);
        Assert.True(s.RetryOnTimeout);
        Assert.Empty(s.RetryOnStatuses);
        Assert.Equal(ClusterBalancingSettings.UnlimitedRetries, s.Retries);
        Assert.False(s.RetryNonIdempotent);
        Assert.Equal(1, s.MaxFails);
        Assert.Equal(TimeSpan.FromSeconds(10), s.FailTimeout);
        Assert.Null(s.FailRatio);
        Assert.Equal(ClusterBalancingSettings.Default, ClusterBalancingSettings.Parse(null, (_, _) => { }));
    }

    [Fact]
    public void TheDefaultBreaker_SparesALoneDestination_AConfiguredOneDoesNot()
    {
        Assert.Equal(0, ClusterBalancingSettings.Default.BreakerMaxFails(1));
        Assert.Equal(1, ClusterBalancingSettings.Default.BreakerMaxFails(2));
        Assert.Equal(2, Parse(("MaxFails", "2")).BreakerMaxFails(1));
        Assert.Equal(1, Parse(("MaxFails", "1")).BreakerMaxFails(1));
    }

    [Fact]
    public void EachDefault_CanBeTurnedOff()
    {
        Assert.Equal(0, Parse(("Retries", "0")).Retries);
        var noConditions = Parse(("RetryOn", ""));
        Assert.False(noConditions.RetryOnError);
        Assert.False(noConditions.RetryOnTimeout);
        Assert.Equal(0, Parse(("MaxFails", "0")).BreakerMaxFails(5));
    }
}
