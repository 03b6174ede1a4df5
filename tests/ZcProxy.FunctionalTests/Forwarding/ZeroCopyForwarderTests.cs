using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using System.Net;
using System.Text;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Forwarding;

public class ZeroCopyForwarderTests
{
    private const long Threshold = 64 * 1024;
    private static readonly HttpClient Client = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(5) }) { Timeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task Bodies_AreByteExact_AtEverySizeAroundTheThreshold()
    {
        await using var origin = await TestOrigin.StartAsync("O", BodyPattern.MapEndpoints);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        long expectedSpliced = 0, expectedCopied = 0;
        int splicedBodies = 0;
        foreach (var size in new[] { 0L, 1, Threshold - 1, Threshold, 16L << 20 })
        {
            using var response = await Client.GetAsync($"{bed.Url}/bytes/{size}", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(size, response.Content.Headers.ContentLength);
            var (sha, length) = await BodyPattern.HashStreamAsync(await response.Content.ReadAsStreamAsync());
            Assert.Equal(size, length);
            Assert.Equal(BodyPattern.Sha256(size), sha);
            if (size >= Threshold) (expectedSpliced, splicedBodies) = (expectedSpliced + size, splicedBodies + 1); else expectedCopied += size;
        }
        Assert.Equal(5, bed.Forwarding.ZeroCopy.Value);
        Assert.Equal(0, bed.Forwarding.Yarp.Value);
        // Every body byte is counted exactly once, by the mechanism that moved it: splice from the threshold up.
        await bed.AssertBodyMechanismsAsync(expectedSpliced, expectedCopied, splicedBodies);
    }

    [Fact]
    public async Task Body256MiB_IsByteExact()
    {
        await using var origin = await TestOrigin.StartAsync("O", BodyPattern.MapEndpoints);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        const long size = 256L << 20;
        using var response = await Client.GetAsync($"{bed.Url}/bytes/{size}", HttpCompletionOption.ResponseHeadersRead);
        var (sha, length) = await BodyPattern.HashStreamAsync(await response.Content.ReadAsStreamAsync());
        Assert.Equal(size, length);
        Assert.Equal(BodyPattern.Sha256(size), sha);
        await bed.AssertBodyMechanismsAsync(size, 0);
    }

    [Fact]
    public async Task ConcurrentRequests_NeverCrossBodiesOnPooledConnections()
    {
        await using var origin = await TestOrigin.StartAsync("O", BodyPattern.MapEndpoints);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        var sizes = Enumerable.Range(0, 60).Select(i => (long)(i % 3 == 0 ? 200_000 + i : i * 997)).ToArray();
        await Parallel.ForEachAsync(sizes, new ParallelOptions { MaxDegreeOfParallelism = 12 }, async (size, ct) =>
        {
            using var response = await Client.GetAsync($"{bed.Url}/bytes/{size}", HttpCompletionOption.ResponseHeadersRead, ct);
            var (sha, length) = await BodyPattern.HashStreamAsync(await response.Content.ReadAsStreamAsync(ct));
            Assert.Equal(size, length);
            Assert.Equal(BodyPattern.Sha256(size), sha);
        });
        Assert.Equal(sizes.Length, bed.Forwarding.ZeroCopy.Value);
        Assert.True(bed.Metrics.CounterValue("zcproxy_upstream_connections_opened_total") <= 12 + 1);
    }

    [Fact]
    public async Task KeepAliveAndPipelinedClientRequests_AfterLargeBodies()
    {
        await using var origin = await TestOrigin.StartAsync("O", BodyPattern.MapEndpoints);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            // Sequential requests on one connection, then three pipelined in one write.
            foreach (var size in new[] { 200_000L, 1, 100_000 })
            {
                await ForwarderTestBed.SendAsync(socket, $"GET /bytes/{size} HTTP/1.1\r\nHost: x\r\n\r\n");
                var (status, _, body) = await reader.ReadResponseAsync();
                Assert.Equal(200, status);
                Assert.Equal(BodyPattern.Sha256(size), Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(body)));
            }
            long[] pipelined = [300_000, 5, Threshold];
            await ForwarderTestBed.SendAsync(socket, string.Concat(pipelined.Select(s => $"GET /bytes/{s} HTTP/1.1\r\nHost: x\r\n\r\n")));
            foreach (var size in pipelined)
            {
                var (status, _, body) = await reader.ReadResponseAsync();
                Assert.Equal(200, status);
                Assert.Equal(BodyPattern.Sha256(size), Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(body)));
            }
        }
        Assert.Equal(6, bed.Forwarding.ZeroCopy.Value);
        await bed.AssertBodyMechanismsAsync(200_000 + 100_000 + 300_000 + Threshold, 1 + 5, splicedBodies: 4);
    }

    [Fact]
    public async Task UpstreamConnections_AreKeptAliveAndReused()
    {
        await using var origin = RawSocketOrigin.Start(async (request, socket) =>
        {
            await RawSocketOrigin.SendAsync(socket, $"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            return true;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        for (int i = 0; i < 5; i++) Assert.Equal("ok", await Client.GetStringAsync($"{bed.Url}/k{i}"));
        Assert.Equal(1, origin.Connections);
        Assert.Equal(4, bed.Metrics.CounterValue("zcproxy_upstream_connections_reused_total"));
    }

    [Fact]
    public async Task SmallCopiedResponses_PrefetchedWithTheirHeads_AreByteExact_OnOneKeptAliveUpstreamConnection()
    {
        // Head and body in one write, so the body is in the peek: it is consumed with the head and must not bleed into the next response.
        string body1 = new('a', 1024), body2 = "chunked-body";
        await using var origin = RawSocketOrigin.Start(async (request, socket) =>
        {
            string response = (request.RequestOnConnection % 3) switch
            {
                1 => $"HTTP/1.1 200 OK\r\nContent-Length: {body1.Length}\r\n\r\n{body1}",
                2 => $"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body2.Length:x}\r\n{body2}\r\n0\r\n\r\n",
                _ => "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
            };
            await RawSocketOrigin.SendAsync(socket, response);
            return true;
        });
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        for (int round = 0; round < 2; round++)
        {
            Assert.Equal(body1, await Client.GetStringAsync($"{bed.Url}/a{round}"));
            Assert.Equal(body2, await Client.GetStringAsync($"{bed.Url}/b{round}"));
            Assert.Equal("z", await Client.GetStringAsync($"{bed.Url}/c{round}"));
        }
        Assert.Equal(1, origin.Connections);
        Assert.Equal(5, bed.Metrics.CounterValue("zcproxy_upstream_connections_reused_total"));
        await bed.AssertBodyMechanismsAsync(0, 2 * (body1.Length + body2.Length + 1), splicedBodies: 0);
    }

    [Fact]
    public async Task HeadNoContentAndNotModified_HaveNoBody_AndTheConnectionStaysUsable()
    {
        await using var origin = await TestOrigin.StartAsync("O", BodyPattern.MapEndpoints);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        var (socket, reader) = await bed.ConnectRawAsync();
        using (socket)
        {
            await ForwarderTestBed.SendAsync(socket, "HEAD /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n");
            var head = await reader.ReadResponseAsync(noBody: true);
            Assert.Equal(200, head.Status);
            Assert.Equal("100000", head.Headers["Content-Length"]);

            await ForwarderTestBed.SendAsync(socket, "GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.Equal(204, (await reader.ReadResponseAsync()).Status);
            await ForwarderTestBed.SendAsync(socket, "GET /status/304 HTTP/1.1\r\nHost: x\r\n\r\n");
            var notModified = await reader.ReadResponseAsync();
            Assert.Equal(304, notModified.Status);
            Assert.Equal("\"v1\"", notModified.Headers["ETag"]);

            // Any stray body byte after the bodiless responses would corrupt this one.
            await ForwarderTestBed.SendAsync(socket, "GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n");
            var (status, _, body) = await reader.ReadResponseAsync();
            Assert.Equal(200, status);
            Assert.Equal(10, body.Length);
        }
        Assert.Equal(4, bed.Forwarding.ZeroCopy.Value);
    }

    [Fact]
    public async Task ChunkedUpstream_IsDecodedAndCopied()
    {
        await using var origin = await TestOrigin.StartAsync("O", BodyPattern.MapEndpoints);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        const long size = 3_000_000;
        for (int i = 0; i < 2; i++) // twice: the upstream connection must be reusable after a chunked body
        {
            using var response = await Client.GetAsync($"{bed.Url}/chunked/{size}", HttpCompletionOption.ResponseHeadersRead);
            Assert.Null(response.Content.Headers.ContentLength);
            var (sha, length) = await BodyPattern.HashStreamAsync(await response.Content.ReadAsStreamAsync());
            Assert.Equal(size, length);
            Assert.Equal(BodyPattern.Sha256(size), sha);
        }
        Assert.Equal(2 * size, bed.Copied); // chunked bodies are copied, never spliced
        Assert.Equal(0, bed.Spliced);
        Assert.Equal(1, bed.Metrics.CounterValue("zcproxy_upstream_connections_reused_total"));
    }

    [Fact]
    public async Task RequestBodies_ContentLengthAndChunked_AreForwarded()
    {
        await using var origin = await TestOrigin.StartAsync("O", BodyPattern.MapEndpoints);
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        const long size = 3_000_007;
        var bytes = BodyPattern.Pieces(size).SelectMany(p => p.ToArray()).ToArray();

        var withLength = await Client.PostAsync($"{bed.Url}/echo", new ByteArrayContent(bytes));
        Assert.Equal($"{size} {BodyPattern.Sha256(size)}", await withLength.Content.ReadAsStringAsync());

        var chunked = new StreamContent(new MemoryStream(bytes));
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{bed.Url}/echo") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        var response = await Client.SendAsync(request);
        Assert.Equal($"{size} {BodyPattern.Sha256(size)}", await response.Content.ReadAsStringAsync());

        var empty = await Client.PostAsync($"{bed.Url}/echo", new ByteArrayContent([]));
        Assert.Equal($"0 {BodyPattern.Sha256(0)}", await empty.Content.ReadAsStringAsync());

        Assert.Equal(3, bed.Forwarding.ZeroCopy.Value);
        // The Content-Length body is spliced but for what came with its head; the chunked one is copied.
        long copied = bed.Metrics.GetBodyBytes(Core.Diagnostics.BodyMechanism.Copy, Core.Diagnostics.BodyDirection.Request);
        long spliced = bed.Metrics.GetBodyBytes(Core.Diagnostics.BodyMechanism.Splice, Core.Diagnostics.BodyDirection.Request);
        Assert.Equal(2 * size, copied + spliced);
        Assert.InRange(spliced, size - Core.Transport.ZeroCopyTransport.BlockSize, size);
    }

    [Fact]
    public async Task Transforms_AreTheSameOnBothPaths()
    {
        // Kestrel reuses header dictionaries between requests: copy them while the request is in flight.
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Path, Dictionary<string, string> Headers)>();
        await using var origin = await TestOrigin.StartAsync("O", app => app.Use(async (context, next) =>
        {
            captured.Enqueue((context.Request.Path + context.Request.QueryString,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase)));
            await next(context);
        }));
        const string transforms = """ "Transforms": [ { "PathRemovePrefix": "/api" }, { "RequestHeader": "X-Added", "Set": "yes" }, { "ResponseHeader": "X-Resp", "Set": "r" } ] """;
        await using var zeroCopy = await ForwarderTestBed.StartAsync(origin.Url, routeExtra: transforms, path: "/api/{**rest}");
        await using var yarp = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: "\"Enabled\": false", routeExtra: transforms, path: "/api/{**rest}");

        var seen = new List<(string Path, Dictionary<string, string> Headers, string Body, string? RespHeader)>();
        foreach (var bed in new[] { zeroCopy, yarp })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{bed.Url}/api/items?q=1");
            request.Headers.Add("X-Custom", "c");
            request.Headers.Add("Cookie", "a=1");
            request.Headers.Connection.Add("keep-alive");
            using var response = await Client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            response.Headers.TryGetValues("X-Resp", out var resp);
            Assert.True(captured.TryDequeue(out var got));
            seen.Add((got.Path, got.Headers, body, resp?.Single()));
        }
        Assert.Equal(1, zeroCopy.Forwarding.ZeroCopy.Value);
        Assert.Equal(0, yarp.Forwarding.ZeroCopy.Value);
        Assert.Equal(1, yarp.Forwarding.Yarp.Value);

        var (z, y) = (seen[0], seen[1]);
        Assert.Equal("/items?q=1", z.Path);
        Assert.Equal(y.Path, z.Path);
        Assert.Equal("O GET /items?q=1", z.Body);
        Assert.Equal(y.Body, z.Body);
        Assert.Equal("r", z.RespHeader);
        Assert.Equal(y.RespHeader, z.RespHeader);
        foreach (var name in new[] { "X-Forwarded-For", "X-Forwarded-Proto", "X-Added", "X-Custom", "Cookie" })
        {
            Assert.True(z.Headers.ContainsKey(name), name);
            Assert.Equal(y.Headers[name], z.Headers[name]);
        }
        Assert.StartsWith("127.0.0.1:", z.Headers["X-Forwarded-Host"]); // ports differ: two proxies
        Assert.False(z.Headers.ContainsKey("Keep-Alive"));
        // Same header names on both paths, trace context included (YARP's HttpClient propagates it; so do we).
        Assert.Equal(y.Headers.Keys.Order(StringComparer.OrdinalIgnoreCase), z.Headers.Keys.Order(StringComparer.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Metrics_NameTheForwarderPath()
    {
        await using var origin = await TestOrigin.StartAsync("O");
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url);
        await Client.GetStringAsync($"{bed.Url}/m");
        var text = await Client.GetStringAsync(bed.Proxy.AdminUrl + "/metrics");
        Assert.Contains("zcproxy_forwarded_requests_total{path=\"zerocopy\"} 1", text);
        Assert.Contains("zcproxy_forwarded_requests_total{path=\"yarp\"} 0", text);
        Assert.Contains("zcproxy_upstream_errors_total{kind=\"body_reset\"} 0", text);
    }

    [Fact]
    public async Task YarpPath_CountsItsCopiedBodyBytes_BothDirections()
    {
        var payload = new byte[100_000];
        Random.Shared.NextBytes(payload);
        await using var origin = await TestOrigin.StartAsync("O", app => app.MapPost("/echo", async (HttpRequest r) =>
        {
            var ms = new MemoryStream();
            await r.Body.CopyToAsync(ms);
            return Results.Bytes(ms.ToArray(), "application/octet-stream");
        }));
        await using var bed = await ForwarderTestBed.StartAsync(origin.Url, zeroCopy: "\"SpliceThreshold\": \"1KiB\"");
        // ZeroCopy is read per request: switch it off the way a reload would, so YARP's forwarder carries this one.
        var options = bed.Proxy.Get<ZcProxy.Core.Configuration.RuntimeOptions>();
        options.Update(options.Current with { ZeroCopy = options.Current.ZeroCopy with { Enabled = false } });

        using var response = await Client.PostAsync($"{bed.Url}/echo", new ByteArrayContent(payload));
        Assert.Equal(payload, await response.Content.ReadAsByteArrayAsync());
        await Poll.UntilAsync(() => bed.Copied == payload.Length, "the response body to be counted as copy");
        Assert.Equal(payload.Length, bed.Metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Request));
        Assert.Equal(0, bed.Spliced);
        Assert.Equal(1, bed.Forwarding.Yarp.Value);
    }
}
