using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Transport;

[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class KeepAliveTests
{
    [Fact]
    public async Task PipelinedRequests_AfterHoles_OnOneConnection_AreFramedExactly()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        // Three pipelined requests in one write: a splice hole, a sendfile hole, headers only.
        await client.SendAsync(RawHttpClient.Get("/splice?size=100000") + RawHttpClient.Get("/file?size=70000") + RawHttpClient.Get("/status/204"));
        var spliced = await client.ReadResponseAsync();
        var sent = await client.ReadResponseAsync();
        var noContent = await client.ReadResponseAsync(bodyExpected: false);
        Assert.Equal((200, 100000L, BodyPattern.Sha256(100000)), (spliced.Status, spliced.BodyLength, spliced.Sha));
        Assert.Equal((200, 70000L, BodyPattern.Sha256(70000)), (sent.Status, sent.BodyLength, sent.Sha));
        Assert.Equal(204, noContent.Status);

        // The connection is still in step: more requests, one at a time.
        for (int i = 0; i < 3; i++)
        {
            await client.SendAsync(RawHttpClient.Get($"/splice?size={65536 + i}"));
            var next = await client.ReadResponseAsync();
            Assert.Equal((200, BodyPattern.Sha256(65536 + i)), (next.Status, next.Sha));
        }
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Splice, 100000L + 3 * 65536 + 3);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Sendfile, 70000L);
    }

    [Fact]
    public async Task H2cPriorKnowledge_IsServedThroughTheWriter_WithoutHoles()
    {
        // Kestrel speaks h2c (prior knowledge) only on HTTP/2-only plaintext endpoints.
        await using var host = await ZeroCopyTestHost.StartAsync(Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
        using var client = new HttpClient
        {
            BaseAddress = host.BaseAddress,
            DefaultRequestVersion = System.Net.HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        for (int i = 0; i < 2; i++)
        {
            var (status, length, sha) = await SendFileTests.GetHashedAsync(client, "/file?size=300000");
            Assert.Equal((System.Net.HttpStatusCode.OK, 300000L, BodyPattern.Sha256(300000)), (status, length, sha));
        }
        Assert.Equal(0, host.Metrics.GetBodyBytes(BodyMechanism.Sendfile, BodyDirection.Response)); // HTTP/2: Kestrel's own SendFileAsync
    }

    [Theory]
    [InlineData("HEAD", 200, true)]
    [InlineData("GET", 304, true)]
    [InlineData("GET", 204, false)]
    [InlineData("HEAD", 304, true)]
    public async Task HeadersOnlyResponses_SendNoBody_AndKeepTheConnection(string method, int status, bool hasContentLength)
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get($"/status/{status}", method));
        var response = await client.ReadResponseAsync(bodyExpected: false);
        Assert.Equal(status, response.Status);
        Assert.Equal(hasContentLength ? 1000 : null, response.ContentLength);

        // Had any body byte been sent, this response's status line would not parse.
        await client.SendAsync(RawHttpClient.Get("/file?size=10"));
        var next = await client.ReadResponseAsync();
        Assert.Equal((200, BodyPattern.Sha256(10)), (next.Status, next.Sha));
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Sendfile, 10);
    }
}
