using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Output;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport;

/// <summary>A body source or a client failing mid-body: the client never gets a truncated body passed off as complete,
/// and the handler always completes, promptly.</summary>
[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class FaultTests
{
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData("Close", "SourceEnded")]
    [InlineData("Reset", "SourceFailed")]
    public async Task Splice_SourceEndsEarly_ClientConnectionIsAborted(string end, string expectedName)
    {
        var expected = Enum.Parse<BodyOutcome>(expectedName);
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get($"/splice?size={4 << 20}&send={1 << 20}&end={end}"));
        var error = await Assert.ThrowsAnyAsync<IOException>(() => client.ReadResponseAsync());
        Assert.Contains("before the end of the body", error.Message);
        var outcome = await OutcomeAsync(host, "/splice");
        if (end == "Close") Assert.Equal(expected, outcome);
        else Assert.Contains(outcome, new[] { BodyOutcome.SourceFailed, BodyOutcome.SourceEnded });
        Assert.True(host.Metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response) <= 1 << 20);
    }

    [Fact]
    public async Task SendFile_FileShorterThanPromised_ClientConnectionIsAborted()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get("/file-short?size=100000&promise=300000"));
        await Assert.ThrowsAnyAsync<IOException>(() => client.ReadResponseAsync());
        Assert.Equal(BodyOutcome.SourceEnded, await OutcomeAsync(host, "/file-short"));
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Sendfile, 100000);
    }

    [Theory]
    [InlineData(false)] // upstream fast, client stops reading: the writer waits on the client socket
    [InlineData(true)]  // upstream stalls: the writer waits on the upstream, watching the client
    public async Task Splice_ClientResetsMidBody_HandlerCompletesPromptly(bool upstreamStalls)
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        long size = 64 << 20, send = upstreamStalls ? 1 << 20 : size;
        await client.SendAsync(RawHttpClient.Get($"/splice?size={size}&send={send}&end=StayOpen"));
        await client.ReadHeadAsync();
        await client.ReadSomeAsync(256 * 1024);
        await Poll.UntilAsync(() => host.Metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response) >= 256 * 1024, "the body started");
        client.Reset();
        Assert.Equal(BodyOutcome.ClientFailed, await OutcomeAsync(host, "/splice"));
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the connection ends", Prompt);
    }

    [Fact]
    public async Task SendFile_ClientResetsMidBody_HandlerCompletesPromptly()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        host.PatternFile(64 << 20);
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get($"/file?size={64 << 20}"));
        await client.ReadHeadAsync();
        await client.ReadSomeAsync(256 * 1024);
        client.Reset();
        Assert.Equal(BodyOutcome.ClientFailed, await OutcomeAsync(host, "/file"));
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the connection ends", Prompt);
    }

    [Fact]
    public async Task Splice_StalledUpstream_IdleTimeoutEndsIt_AndTheClientIsAborted()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get($"/splice?size={4 << 20}&send={1 << 20}&end=StayOpen&idleMs=300"));
        await Assert.ThrowsAnyAsync<IOException>(() => client.ReadResponseAsync());
        Assert.Equal(BodyOutcome.SourceTimedOut, await OutcomeAsync(host, "/splice"));
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the connection ends", Prompt);
    }

    [Fact]
    public async Task Guard_HoleBytesNotPassedThrough_AbortsTheConnection()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get("/guard?size=1000"));
        await Assert.ThrowsAnyAsync<IOException>(() => client.ReadResponseAsync());
        Assert.Equal(BodyOutcome.TransportFailed, await OutcomeAsync(host, "/guard"));
        Assert.Equal(0, host.Metrics.GetBodyBytes(BodyMechanism.Sendfile, BodyDirection.Response));
    }

    /// <summary>
    /// Kestrel internals we rely on: after the head is written, a Content-Length body's GetMemory/Advance reach the
    /// transport writer unbuffered. If an upgrade changes that, the guard trips and this test fails.
    /// </summary>
    [Fact]
    public async Task Guard_KestrelPassesHoleBytesStraightThrough()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        for (int i = 0; i < 2; i++)
        {
            await client.SendAsync(RawHttpClient.Get("/file?size=3000000") + RawHttpClient.Get("/splice?size=3000000"));
            Assert.Equal(BodyPattern.Sha256(3000000), (await client.ReadResponseAsync()).Sha);
            Assert.Equal(BodyPattern.Sha256(3000000), (await client.ReadResponseAsync()).Sha);
        }
        await Poll.UntilAsync(() => host.Outcomes.Count == 4, "four handlers end");
        Assert.All(host.Outcomes, o => Assert.Equal(BodyResult.Complete, o.Result));
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Sendfile, 6000000);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Splice, 6000000);
    }

    /// <summary>
    /// Not a fault: the client read the whole body and hung up before the handler's flush after the hole ran (on a loaded
    /// machine the FIN can be handled first). Every byte went; the body is complete, so the forwarder keeps its drained
    /// upstream connection (it closed it, as after a failed body: ServiceUserPipeTests saw no pooled connection left).
    /// </summary>
    [Fact]
    public async Task Hole_ClientHangsUpRightAfterTheLastByte_TheBodyIsComplete()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        const long Size = 256 * 1024;
        using (var client = await RawHttpClient.ConnectAsync(host.BaseAddress))
        {
            await client.SendAsync(RawHttpClient.Get($"/file-then-hangup?size={Size}"));
            Assert.Equal((200, Size, BodyPattern.Sha256(Size)), ((await client.ReadResponseAsync()) is var r ? (r.Status, r.BodyLength, r.Sha) : default));
        }
        Assert.Equal(BodyOutcome.Complete, await OutcomeAsync(host, "/file-then-hangup"));
    }

    private static async Task<BodyOutcome> OutcomeAsync(ZeroCopyTestHost host, string path)
    {
        await Poll.UntilAsync(() => host.Outcomes.Any(o => o.Path == path), $"the {path} handler completes", Prompt);
        return host.Outcomes.First(o => o.Path == path).Result.Outcome;
    }
}
