using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Balancing;
using ZcProxy.Tests.Infrastructure;
using static ZcProxy.Tests.Balancing.BalancingTestConfig;

namespace ZcProxy.Tests.Balancing;

public class ConnectionLimitTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MaxConnections_QueuesThenServes_AndRejectsBeyondTheQueue(bool zeroCopy)
    {
        var holding = new HoldingOrigin();
        await using var origin = await TestOrigin.StartAsync("A", holding.Map);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"MaxQueue\": 2, \"QueueTimeout\": \"20s\"",
            Destination("a", origin.Url, "\"MaxConnections\": 2")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var runtime = proxy.Get<DestinationRegistry>().Get("c", "a");

        var held = Enumerable.Range(0, 4).Select(_ => Client.GetAsync(proxy.Url + "/hold")).ToList();
        await Poll.UntilAsync(() => holding.InFlight == 2 && runtime.Slots.QueueLength == 2, "2 requests at the origin and 2 queued");

        using var rejected = await Client.GetAsync(proxy.Url + "/hold"); // queue full: answered at once
        Assert.Equal(HttpStatusCode.ServiceUnavailable, rejected.StatusCode);
        Assert.Equal("1", rejected.Headers.GetValues("Retry-After").Single());
        Assert.Contains("queue is full", await rejected.Content.ReadAsStringAsync());

        holding.Release.SetResult();
        foreach (var response in await Task.WhenAll(held))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("held", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(2, holding.MaxInFlight);
        Assert.Equal(0, runtime.Slots.InUse);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task QueuedRequest_Gets503AfterQueueTimeout(bool zeroCopy)
    {
        var holding = new HoldingOrigin();
        await using var origin = await TestOrigin.StartAsync("A", holding.Map);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"MaxQueue\": 5, \"QueueTimeout\": \"300ms\"",
            Destination("a", origin.Url, "\"MaxConnections\": 1")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var first = Client.GetAsync(proxy.Url + "/hold");
        await Poll.UntilAsync(() => holding.InFlight == 1, "the first request at the origin");
        var started = DateTime.UtcNow;
        using var timedOut = await Client.GetAsync(proxy.Url + "/hold");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, timedOut.StatusCode);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(250));
        Assert.Contains("QueueTimeout", await timedOut.Content.ReadAsStringAsync());

        holding.Release.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await first).StatusCode);
        Assert.Equal(1, holding.MaxInFlight);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task FullDestination_OverflowsToAnotherWithAFreeSlot(bool zeroCopy)
    {
        var holdingA = new HoldingOrigin();
        var holdingB = new HoldingOrigin();
        await using var a = await TestOrigin.StartAsync("A", holdingA.Map);
        await using var b = await TestOrigin.StartAsync("B", holdingB.Map);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "",
            Destination("a", a.Url, "\"MaxConnections\": 1, \"Weight\": 10"), Destination("b", b.Url, "\"MaxConnections\": 3")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        var held = Enumerable.Range(0, 4).Select(_ => Client.GetAsync(proxy.Url + "/hold")).ToList();
        await Poll.UntilAsync(() => holdingA.InFlight == 1 && holdingB.InFlight == 3, "A at its limit of 1, B taking the other 3");
        holdingA.Release.SetResult();
        holdingB.Release.SetResult();
        Assert.All(await Task.WhenAll(held), r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(1, holdingA.MaxInFlight);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClientLeavingTheQueue_FreesItsPlace(bool zeroCopy)
    {
        var holding = new HoldingOrigin();
        await using var origin = await TestOrigin.StartAsync("A", holding.Map);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "\"MaxQueue\": 1, \"QueueTimeout\": \"20s\"",
            Destination("a", origin.Url, "\"MaxConnections\": 1")));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var runtime = proxy.Get<DestinationRegistry>().Get("c", "a");

        var first = Client.GetAsync(proxy.Url + "/hold");
        await Poll.UntilAsync(() => holding.InFlight == 1, "the first request at the origin");
        using var leave = new CancellationTokenSource();
        var queued = Client.GetAsync(proxy.Url + "/hold", leave.Token);
        await Poll.UntilAsync(() => runtime.Slots.QueueLength == 1, "the second request queued");
        leave.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued);
        await Poll.UntilAsync(() => runtime.Slots.QueueLength == 0, "the queue to be empty again");

        var third = Client.GetAsync(proxy.Url + "/hold"); // takes the freed queue place instead of a 503
        await Poll.UntilAsync(() => runtime.Slots.QueueLength == 1, "the third request queued");
        holding.Release.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await first).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await third).StatusCode);
        Assert.Equal(1, holding.MaxInFlight);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WithoutMaxConnections_ATryTakesNoSlot_ButCountsInFlight(bool zeroCopy)
    {
        var holding = new HoldingOrigin();
        await using var origin = await TestOrigin.StartAsync("A", holding.Map);
        using var dir = new ConfigDirectory();
        Write(dir, zeroCopy, Cluster("c", "RoundRobin", "", Destination("a", origin.Url)));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var runtime = proxy.Get<DestinationRegistry>().Get("c", "a");

        var held = Enumerable.Range(0, 3).Select(_ => Client.GetAsync(proxy.Url + "/hold")).ToList();
        await Poll.UntilAsync(() => holding.InFlight == 3, "3 requests at the origin");
        Assert.Equal(3, runtime.ActiveRequests);
        Assert.Equal(0, runtime.Slots.InUse); // no limit: no slot, no lock on the slots per try

        holding.Release.SetResult();
        Assert.All(await Task.WhenAll(held), r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        await Poll.UntilAsync(() => runtime.ActiveRequests == 0, "nothing in flight once answered");
        Assert.Equal(0, runtime.Slots.InUse);
        Assert.Equal(3, runtime.Completed);
        PathAssert.ForwardedOn(proxy, zeroCopy);
    }
}
