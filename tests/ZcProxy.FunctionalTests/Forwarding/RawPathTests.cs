namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// The request target reaches the upstream as the client sent it when the route's transforms leave the path alone
/// (nginx's proxy_pass without a URI does the same): an encoded slash stays %2F, not %252F. Path transforms keep working.
/// </summary>
public class RawPathTests
{
    [Theory]
    [InlineData(true, "/a%2Fb/%2f%41/c%20d?x=%2F&y=%41")]
    [InlineData(false, "/a%2Fb/%2f%41/c%20d?x=%2F&y=%41")]
    [InlineData(true, "/files/r%C3%A9sum%C3%A9%2Fv2.pdf")]
    [InlineData(false, "/files/r%C3%A9sum%C3%A9%2Fv2.pdf")]
    public async Task EncodedCharacters_ReachTheUpstreamAsSent(bool zeroCopy, string target)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, WireRig.Ok);
        var (status, _, _) = await rig.ExchangeAsync($"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");

        Assert.Equal(200, status);
        Assert.Equal(target, Assert.Single(rig.Received).Target);
        rig.AssertForwardingPath();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task TheDestinationsPath_IsStillPrefixed(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, WireRig.Ok, destinationPath: "base/");
        var (status, _, _) = await rig.ExchangeAsync("GET /a%2Fb?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");

        Assert.Equal(200, status);
        Assert.Equal("/base/a%2Fb?q=1", Assert.Single(rig.Received).Target);
        rig.AssertForwardingPath();
    }

    /// <summary>Dot segments are removed before routing (Kestrel does): the upstream gets the routed path, still encoded as sent.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DotSegments_AreRemoved_AndTheRestKeptAsSent(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, WireRig.Ok);
        var (status, _, _) = await rig.ExchangeAsync("GET /x/./y/../a%2Fb/%2e%2e/c%2Fd HTTP/1.1\r\nHost: x\r\n\r\n");

        Assert.Equal(200, status);
        Assert.Equal("/x/c%2Fd", Assert.Single(rig.Received).Target);
        rig.AssertForwardingPath();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PathTransforms_StillApply(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, WireRig.Ok,
            routeExtra: """ "Transforms": [ { "PathRemovePrefix": "/api" } ] """);
        var (status, _, _) = await rig.ExchangeAsync("GET /api/items/x%20y?q=%2F HTTP/1.1\r\nHost: x\r\n\r\n");

        Assert.Equal(200, status);
        Assert.Equal("/items/x%20y?q=%2F", Assert.Single(rig.Received).Target);
        rig.AssertForwardingPath();
    }

    [Theory]
    [InlineData("/a/b/../c", "/a/c")]
    [InlineData("/a/./b/", "/a/b/")]
    [InlineData("/a/b/.", "/a/b/")]
    [InlineData("/a/b/..", "/a/")]
    [InlineData("/a/..", "/")]
    [InlineData("/..", "/")]
    [InlineData("/a/%2E%2e/b", "/b")]
    [InlineData("/a/.%2e/b%2F..", "/b%2F..")] // "b%2F.." is one segment: %2F separates nothing
    [InlineData("/a..b/.c/", "/a..b/.c/")]
    public void RemoveDotSegments_WorksOnTheRawPath(string raw, string expected)
        => Assert.Equal(expected, ZcProxy.Core.Forwarding.RawPathTransforms.RemoveDotSegments(raw));
}
