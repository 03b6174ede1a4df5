using ZcProxy.Core.Caching;

namespace ZcProxy.Tests.Caching;

/// <summary>RFC 9111 §4.2 arithmetic and the parsers behind it, without a network.</summary>
public class FreshnessTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    private static StoredResponse Stored(params (string, string)[] headers) => new()
    {
        Key = "k", Vary = [], Status = 200, RequestTime = T0.AddSeconds(-2), ResponseTime = T0, BodyLength = 0, Headers = headers,
    };

    [Theory]
    [InlineData("Sun, 06 Nov 1994 08:49:37 GMT")]
    [InlineData("Sunday, 06-Nov-94 08:49:37 GMT")]
    [InlineData("Sun Nov  6 08:49:37 1994")]
    public void HttpDate_AcceptsAllThreeForms(string text)
        => Assert.Equal(new DateTimeOffset(1994, 11, 6, 8, 49, 37, TimeSpan.Zero), HttpDate.Parse(text));

    [Fact]
    public void CurrentAge_CorrectsForDelayAndAgeHeader()
    {
        // Date 10 s before receipt (apparent age 10), Age: 3 + response delay 2 = 5; 7 s resident.
        var r = Stored(("Date", HttpDate.Format(T0.AddSeconds(-10))), ("Age", "3"));
        Assert.Equal(TimeSpan.FromSeconds(17), Freshness.CurrentAge(r, T0.AddSeconds(7)));
        var r2 = Stored(("Date", HttpDate.Format(T0)), ("Age", "30"));
        Assert.Equal(TimeSpan.FromSeconds(32), Freshness.CurrentAge(r2, T0));
    }

    [Theory]
    [InlineData("max-age=100, s-maxage=7", 7)]
    [InlineData("max-age=100", 100)]
    [InlineData("max-age=abc", 0)]
    [InlineData("MAX-AGE=\"50\"", 50)]
    [InlineData("max-age=99999999999", int.MaxValue)]
    public void Lifetime_FromCacheControl(string cc, long seconds)
        => Assert.Equal(TimeSpan.FromSeconds(seconds), Freshness.Lifetime(Stored(("Cache-Control", cc), ("Expires", HttpDate.Format(T0.AddHours(1))))));

    [Fact]
    public void Lifetime_ExpiresMinusDate_AndHeuristicOnlyWhereAllowed()
    {
        Assert.Equal(TimeSpan.FromSeconds(60), Freshness.Lifetime(Stored(("Date", HttpDate.Format(T0)), ("Expires", HttpDate.Format(T0.AddSeconds(60))))));
        var lm = Stored(("Date", HttpDate.Format(T0)), ("Last-Modified", HttpDate.Format(T0.AddHours(-10))));
        Assert.Equal(TimeSpan.FromHours(1), Freshness.Lifetime(lm));
        Assert.Equal(TimeSpan.Zero, Freshness.Lifetime(lm with { Status = 302 }));
        Assert.Equal(TimeSpan.FromHours(1), Freshness.Lifetime(lm with { Status = 302, Headers = [.. lm.Headers, ("Cache-Control", "public")] }));
        Assert.Equal(Freshness.MaxHeuristic, Freshness.Lifetime(Stored(("Date", HttpDate.Format(T0)), ("Last-Modified", HttpDate.Format(T0.AddYears(-1))))));
    }

    [Fact]
    public void CacheControl_QuotedCommas_AndQualifiedForms()
    {
        var cc = CacheControl.Parse("private=\"a, b\", no-cache=\"c\", max-age=5, community=\"UCI\"");
        Assert.False(cc.Private);
        Assert.False(cc.NoCache);
        Assert.Equal(["a", "b", "c"], cc.WithheldFields());
        Assert.Equal(TimeSpan.FromSeconds(5), cc.MaxAge);
        Assert.True(CacheControl.Parse("No-Cache").NoCache);
    }

    [Fact]
    public void StaleServing_ForbiddenByMustRevalidate_ProxyRevalidate_SMaxAge_NoCache()
    {
        Assert.True(Freshness.MayServeStale(CacheControl.Parse("max-age=1")));
        foreach (var cc in new[] { "must-revalidate", "proxy-revalidate", "s-maxage=1", "no-cache" })
            Assert.False(Freshness.MayServeStale(CacheControl.Parse(cc)));
    }
}
