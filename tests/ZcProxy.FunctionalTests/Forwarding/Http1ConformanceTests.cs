using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Xunit.Abstractions;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// The proxy's client-facing HTTP/1.1 (RFC 9110, RFC 9112), black box over raw sockets: status, framing, the bytes that
/// reach the origin, whether the connection stays open. Whoever parses the requests (ZcProxy's own layer by default;
/// Kestrel's with ZCPROXY_TEST_HTTP1=kestrel) must pass the same cases. Framing attacks (CL.TE, duplicate or malformed lengths,
/// transfer codings, obs-fold, control bytes) are RequestFramingTests' corpus, on the same rig.
/// </summary>
public sealed class Http1ConformanceTests(Http1ConformanceRig rig, ITestOutputHelper output) : IClassFixture<Http1ConformanceRig>
{
    private static string Unique(string name) => $"/{name}-{Guid.NewGuid().ToString("N")[..8]}";

    // ---- Pipelining and keep-alive ----

    [Fact]
    public async Task PipelinedRequests_InOneWrite_AreAnsweredInOrder()
    {
        using var c = await rig.ConnectAsync();
        string a = Unique("p1"), b = Unique("p2"), d = Unique("p3");
        await c.SendAsync($"GET {a} HTTP/1.1\r\nHost: x\r\n\r\nGET {b} HTTP/1.1\r\nHost: x\r\n\r\nGET {d} HTTP/1.1\r\nHost: x\r\n\r\n");
        foreach (var target in new[] { a, b, d })
            Assert.Equal((200, Http1ConformanceRig.Echo("GET", target)), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    [Fact]
    public async Task PipelinedPost_WithABody_BetweenTwoGets_IsFramedByItsLength()
    {
        using var c = await rig.ConnectAsync();
        string a = Unique("p1"), b = Unique("post"), d = Unique("p3");
        await c.SendAsync($"GET {a} HTTP/1.1\r\nHost: x\r\n\r\n"
            + $"POST {b} HTTP/1.1\r\nHost: x\r\nContent-Length: 25\r\n\r\nGET /not-a-request HTTP/1"
            + $"GET {d} HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", a)), await StatusAndBodyAsync(c));
        Assert.Equal((200, Http1ConformanceRig.Echo("POST", b, "GET /not-a-request HTTP/1")), await StatusAndBodyAsync(c));
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", d)), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
        rig.AssertOriginNeverSaw("/not-a-request");
    }

    [Fact]
    public async Task Http11_KeepsTheConnectionByDefault()
    {
        using var c = await rig.ConnectAsync();
        await c.AssertKeptAliveAsync();
        await c.AssertKeptAliveAsync();
    }

    [Fact]
    public async Task ConnectionClose_IsAnsweredAndThenTheConnectionCloses()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("close");
        await c.SendAsync($"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", target)), await StatusAndBodyAsync(c));
        await c.AssertClosedAsync();
    }

    [Fact]
    public async Task Http10_WithoutKeepAlive_IsAnsweredWithoutChunking_AndTheConnectionCloses()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("h10");
        await c.SendAsync($"GET {target} HTTP/1.0\r\n\r\n");
        var (status, headers, body) = await c.ReadAsync();
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", target)), (status, body));
        Assert.False(headers.ContainsKey("Transfer-Encoding"), "an HTTP/1.0 client got a transfer coding");
        await c.AssertClosedAsync();
    }

    [Fact]
    public async Task Http10_WithConnectionKeepAlive_KeepsTheConnection()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("h10ka");
        await c.SendAsync($"GET {target} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        var (status, headers, body) = await c.ReadAsync();
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", target)), (status, body));
        Assert.False(headers.ContainsKey("Transfer-Encoding"), "an HTTP/1.0 client got a transfer coding");
        await c.AssertKeptAliveAsync("HTTP/1.0");
    }

    /// <summary>An HTTP/1.0 client cannot read chunks: a body without a length can only be ended by the close.</summary>
    [Fact]
    public async Task Http10_WithKeepAlive_AndAnUnframedOriginBody_GetsTheWholeBody()
    {
        using var c = await rig.ConnectAsync();
        await c.SendAsync("GET /unframed HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        var (status, headers, body) = await c.ReadAsync();
        Assert.Equal((200, Http1ConformanceRig.UnframedBody), (status, body));
        Assert.False(headers.ContainsKey("Transfer-Encoding"), "an HTTP/1.0 client got a transfer coding");
        if (headers.ContainsKey("Content-Length")) await c.AssertKeptAliveAsync("HTTP/1.0");
    }

    /// <summary>
    /// A FIN after a complete request: today the proxy takes it as the client leaving (as Kestrel's socket transport and
    /// nginx's default do; ZeroCopyConnection.OnPeerClosed) and aborts the request, so usually no response comes, though
    /// one may when the origin is quicker than the FIN. Either way, nothing partial, and the connection closes.
    /// </summary>
    [Fact]
    public async Task ClientHalfClose_AfterACompleteRequest_GetsTheWholeResponseOrNone_ThenTheClose()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("half");
        await c.SendAsync($"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        c.Socket.Shutdown(SocketShutdown.Send);
        (int, string)? response = null;
        try { response = await StatusAndBodyAsync(c); }
        catch (EndOfStreamException) { }
        output.WriteLine($"after the half-close: {response?.ToString() ?? "no response"}");
        if (response is not null)
        {
            Assert.Equal((200, Http1ConformanceRig.Echo("GET", target)), response);
            await c.AssertClosedAsync();
        }
    }

    // ---- Responses without a body, and without a length ----

    [Fact]
    public async Task Head_GetsNoBodyBytes_EvenWithTheOriginsContentLength()
    {
        using var c = await rig.ConnectAsync();
        var next = Unique("after-head");
        await c.SendAsync($"HEAD /head HTTP/1.1\r\nHost: x\r\n\r\nGET {next} HTTP/1.1\r\nHost: x\r\n\r\n"); // pipelined: a body byte would break the next parse
        var (status, headers, _) = await c.ReadAsync(noBody: true);
        Assert.Equal(200, status);
        if (headers.TryGetValue("Content-Length", out var length)) Assert.Equal("5", length);
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", next)), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    [Theory]
    [InlineData(204)]
    [InlineData(304)]
    public async Task OriginResponsesWithoutABody_ReachTheClientWithoutOne(int status)
    {
        using var c = await rig.ConnectAsync();
        var next = Unique("after");
        await c.SendAsync($"GET /{status} HTTP/1.1\r\nHost: x\r\n\r\nGET {next} HTTP/1.1\r\nHost: x\r\n\r\n");
        var (got, headers, _) = await c.ReadAsync();
        Assert.Equal(status, got);
        Assert.False(headers.ContainsKey("Transfer-Encoding"), $"a {status} got a transfer coding");
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", next)), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    /// <summary>A body the origin ends by closing reaches an HTTP/1.1 client chunked (the connection stays) or ended by the close too.</summary>
    [Fact]
    public async Task OriginBodyEndedByTheClose_ReachesTheClientWhole()
    {
        using var c = await rig.ConnectAsync();
        await c.SendAsync("GET /unframed HTTP/1.1\r\nHost: x\r\n\r\n");
        var (status, headers, body) = await c.ReadAsync();
        Assert.Equal((200, Http1ConformanceRig.UnframedBody), (status, body));
        output.WriteLine($"framing: {(headers.TryGetValue("Transfer-Encoding", out var te) ? te : headers.ContainsKey("Content-Length") ? "length" : "close")}");
        if (headers.ContainsKey("Transfer-Encoding") || headers.ContainsKey("Content-Length")) await c.AssertKeptAliveAsync();
        else await c.AssertClosedAsync();
    }

    // ---- Request bodies ----

    [Fact]
    public async Task ContentLengthBody_InSeveralSmallWrites_ReachesTheOrigin()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("pieces");
        foreach (var piece in new[] { $"POST {target} HTTP/1.1\r\nHo", "st: x\r\nContent-Length: 20\r\n", "\r\n", "01234", "56789", "abcde", "fghij" })
            await c.SendAsync(piece);
        Assert.Equal((200, Http1ConformanceRig.Echo("POST", target, "0123456789abcdefghij")), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    [Fact]
    public async Task ContentLengthZero_ForwardsAnEmptyBody()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("cl0");
        await c.SendAsync($"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        Assert.Equal((200, Http1ConformanceRig.Echo("POST", target)), await StatusAndBodyAsync(c));
        Assert.Empty(rig.OriginReceived(target).Body);
        await c.AssertKeptAliveAsync();
    }

    [Fact]
    public async Task ChunkedUpload_InPieces_WithATrailer_ReachesTheOrigin()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("chunked");
        foreach (var piece in new[] { $"POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhel", "lo\r\n", "6;x=y\r\n world\r\n", "0\r\nX-Trailer: t\r\n", "\r\n" })
            await c.SendAsync(piece);
        Assert.Equal((200, Http1ConformanceRig.Echo("POST", target, "hello world")), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    /// <summary>RFC 9110 §10.1.1: a client that waits for 100 (Continue) before its body gets it, or the final status.</summary>
    [Fact]
    public async Task ExpectContinue_TheClientThatWaits_GetsA100_ThenTheResponse()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("expect");
        await c.SendAsync($"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
        var (status, _, _) = await c.ReadAsync();
        Assert.Equal(100, status);
        await c.SendAsync("hello");
        Assert.Equal((200, Http1ConformanceRig.Echo("POST", target, "hello")), await StatusAndBodyAsync(c));
        output.WriteLine($"the origin got Expect: {rig.OriginReceived(target).Headers.GetValueOrDefault("Expect") ?? "(none)"}");
        await c.AssertKeptAliveAsync();
    }

    [Fact]
    public async Task GetWithABody_ForwardsTheBody()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("getbody");
        await c.SendAsync($"GET {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd");
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", target, "abcd")), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    // ---- Large bodies (spliced by ZcProxy's transport) and chunked origin bodies ----

    [Fact]
    public async Task PipelinedLargeUpload_ThenAGet_InOneWrite_AreFramedExactly()
    {
        using var c = await rig.ConnectAsync();
        string post = Unique("large-post"), next = Unique("after-large-post");
        var bytes = new List<byte>(Encoding.Latin1.GetBytes($"POST {post} HTTP/1.1\r\nHost: x\r\nContent-Length: {Http1ConformanceRig.LargeBody}\r\n\r\n"));
        foreach (var piece in BodyPattern.Pieces(Http1ConformanceRig.LargeBody)) bytes.AddRange(piece.ToArray());
        bytes.AddRange(Encoding.Latin1.GetBytes($"GET {next} HTTP/1.1\r\nHost: x\r\n\r\n"));
        await c.Socket.SendAsync(bytes.ToArray().AsMemory());
        Assert.Equal((200, Http1ConformanceRig.EchoOfLargeBody("POST", post)), await StatusAndBodyAsync(c));
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", next)), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    [Fact]
    public async Task PipelinedLargeResponse_ThenAGet_InOneWrite_AreFramedExactly()
    {
        using var c = await rig.ConnectAsync();
        var next = Unique("after-large");
        await c.SendAsync($"GET /large HTTP/1.1\r\nHost: x\r\n\r\nGET {next} HTTP/1.1\r\nHost: x\r\n\r\n");
        var (status, _, body) = await c.ReadAsync();
        Assert.Equal((200, Http1ConformanceRig.LargeBody, BodyPattern.Sha256(Http1ConformanceRig.LargeBody)), (status, body.Length, Sha256(body)));
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", next)), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    [Fact]
    public async Task LargeResponse_ToAnHttp10Client_IsWhole_AndTheConnectionCloses()
    {
        using var c = await rig.ConnectAsync();
        await c.SendAsync("GET /large HTTP/1.0\r\n\r\n");
        var (status, headers, body) = await c.ReadAsync();
        Assert.Equal((200, Http1ConformanceRig.LargeBody, BodyPattern.Sha256(Http1ConformanceRig.LargeBody)), (status, body.Length, Sha256(body)));
        Assert.False(headers.ContainsKey("Transfer-Encoding"), "an HTTP/1.0 client got a transfer coding");
        await c.AssertClosedAsync();
    }

    [Theory]
    [InlineData("HTTP/1.1")]
    [InlineData("HTTP/1.0")]
    public async Task ChunkedOriginBody_ReachesTheClientDecoded(string http)
    {
        using var c = await rig.ConnectAsync();
        await c.SendAsync($"GET /chunked {http}\r\nHost: x\r\n{(http == "HTTP/1.0" ? "Connection: keep-alive\r\n" : "")}\r\n");
        var (status, headers, body) = await c.ReadAsync();
        Assert.Equal((200, "hello world"), (status, body));
        if (http == "HTTP/1.0") Assert.False(headers.ContainsKey("Transfer-Encoding"), "an HTTP/1.0 client got a transfer coding");
        if (http == "HTTP/1.1" || headers.ContainsKey("Content-Length")) await c.AssertKeptAliveAsync(http);
        else await c.AssertClosedAsync();
    }

    [Fact]
    public async Task HeadOfAChunkedOriginResponse_GetsNoBodyBytes()
    {
        using var c = await rig.ConnectAsync();
        var next = Unique("after-head");
        await c.SendAsync($"HEAD /chunked HTTP/1.1\r\nHost: x\r\n\r\nGET {next} HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(200, (await c.ReadAsync(noBody: true)).Status);
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", next)), await StatusAndBodyAsync(c));
    }

    [Fact]
    public async Task ConnectionClose_TheRequestPipelinedBehindIt_IsNeverForwarded()
    {
        using var c = await rig.ConnectAsync();
        string first = Unique("close-first"), behind = Unique("behind-close");
        await c.SendAsync($"GET {first} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET {behind} HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", first)), await StatusAndBodyAsync(c));
        await c.AssertClosedAsync();
        rig.AssertOriginNeverSaw(behind);
    }

    // ---- Request targets and line endings ----

    [Fact]
    public async Task AbsoluteFormTarget_IsForwardedAsItsPathAndQuery()
    {
        using var c = await rig.ConnectAsync();
        var path = Unique("absolute");
        await c.SendAsync($"GET http://x{path}?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", path + "?q=1")), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    /// <summary>RFC 9112 §2.2: a recipient MAY take a bare LF as a line end. Kestrel does; so must whoever replaces it.</summary>
    [Fact]
    public async Task BareLfLineEndings_AreAccepted()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("lf");
        await c.SendAsync($"GET {target} HTTP/1.1\nHost: x\n\n");
        Assert.Equal((200, Http1ConformanceRig.Echo("GET", target)), await StatusAndBodyAsync(c));
        await c.AssertKeptAliveAsync();
    }

    /// <summary>
    /// RFC 9110 §9.3.7: "OPTIONS *" asks about the server, not a resource. YARP's HttpClient cannot send an asterisk-form
    /// target, and both forwarders sent it upstream as "OPTIONS /", a question about "/": the proxy answers it itself
    /// (ServerWideOptionsMiddleware), on both forwarders, and the request pipelined behind it is served in step.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task OptionsAsterisk_IsAnsweredByTheProxy_NeverForwardedAsAPath(bool zeroCopy)
    {
        await using var wire = await WireRig.StartAsync(zeroCopy, WireRig.Ok);
        var (socket, reader) = await wire.ConnectAsync();
        using var c = new ClientConnection(socket, reader);
        var next = Unique("after-options");
        await c.SendAsync($"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET {next} HTTP/1.1\r\nHost: x\r\n\r\n");
        var (status, headers, body) = await c.ReadAsync();
        output.WriteLine($"OPTIONS *: {status} {string.Join(" | ", headers.Select(h => h.Key + ": " + h.Value))} body '{body}'");
        Assert.Equal((200, "0", ""), (status, headers.GetValueOrDefault("Content-Length"), body));
        Assert.Equal((200, "ok"), await StatusAndBodyAsync(c));
        Assert.Equal("GET " + next, Assert.Single(wire.Received).Method + " " + Assert.Single(wire.Received).Target);
        wire.AssertForwardingPath();
    }

    // ---- Requests the proxy answers itself, and closes ----

    public static TheoryData<string, string, int> Rejected => new()
    {
        { "no Host in HTTP/1.1", "GET /{m} HTTP/1.1\r\nX-Case: {m}\r\n\r\n", 400 },
        { "two spaces after the method", "GET  /{m} HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
        { "a method that is not a token", "GE(T /{m} HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
        { "a Content-Length that is not digits", "POST /{m} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nabc", 400 },
        { "an unknown HTTP version", "GET /{m} HTTP/1.7\r\nHost: x\r\n\r\n", 505 },
        { "a request line over 8 KiB", "GET /{m}?" + new string('a', 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414 },
        { "fields over Limits.MaxRequestHeadersSize", "GET /{m} HTTP/1.1\r\nHost: x\r\n"
            + string.Concat(Enumerable.Range(0, 10).Select(i => $"X-Pad-{i}: {new string('p', Http1ConformanceRig.MaxRequestHeadersSize / 8)}\r\n")) + "\r\n", 431 },
    };

    [Theory]
    [MemberData(nameof(Rejected))]
    public async Task MalformedOrOversizedRequests_AreAnsweredByTheProxy_AndTheConnectionCloses(string name, string request, int expected)
    {
        var marker = "bad-" + Guid.NewGuid().ToString("N")[..8];
        using var c = await rig.ConnectAsync();
        await c.SendAsync(request.Replace("{m}", marker, StringComparison.Ordinal));
        var (status, _, _) = await c.ReadAsync();
        output.WriteLine($"{name}: {status}");
        Assert.Equal(expected, status);
        await c.AssertClosedAsync();
        rig.AssertOriginNeverSaw(marker);
    }

    /// <summary>
    /// RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; the proxy rejects such a request or forwards it framed by
    /// its chunks without the Content-Length, and in either case closes the connection after answering.
    /// </summary>
    [Fact]
    public async Task ContentLengthAndTransferEncoding_AreNeverBothTrusted_AndTheConnectionCloses()
    {
        using var c = await rig.ConnectAsync();
        var target = Unique("clte");
        await c.SendAsync($"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        var (status, _, body) = await c.ReadAsync();
        output.WriteLine($"CL+TE: {status}");
        if (status == 200)
        {
            Assert.Equal(Http1ConformanceRig.Echo("POST", target, "hello"), body);
            Assert.False(rig.OriginReceived(target).Headers.ContainsKey("Content-Length"), "the origin got the Content-Length too");
        }
        else Assert.Equal(400, status);
        await c.AssertClosedAsync();
    }

    private static string Sha256(string latin1) => Convert.ToHexString(SHA256.HashData(Encoding.Latin1.GetBytes(latin1)));

    private static async Task<(int, string)> StatusAndBodyAsync(ClientConnection c)
    {
        var (status, _, body) = await c.ReadAsync();
        return (status, body);
    }
}

/// <summary>Client timeouts (Limits.KeepAliveTimeout, RequestHeadersTimeout at 1 s), on a proxy of their own.</summary>
public sealed class Http1ConformanceTimeoutTests(Http1ShortTimeoutsRig rig, ITestOutputHelper output) : IClassFixture<Http1ShortTimeoutsRig>
{
    [Fact]
    public async Task IdleKeptAliveConnection_IsClosedAfterTheKeepAliveTimeout()
    {
        using var c = await rig.ConnectAsync();
        await c.AssertKeptAliveAsync();
        await c.AssertClosedAsync();
    }

    /// <summary>Bytes that trickle in do not extend RequestHeadersTimeout: the whole head must arrive within it.</summary>
    [Fact]
    public async Task HeadSentByteByByte_SlowerThanTheHeadersTimeout_IsCutOff()
    {
        var marker = "slow-" + Guid.NewGuid().ToString("N")[..8];
        var head = Encoding.Latin1.GetBytes($"GET /{marker} HTTP/1.1\r\nHost: x\r\nX-Pad: {new string('p', 100)}\r\n\r\n");
        using var c = await rig.ConnectAsync();
        var answer = c.ReadAsync(); // the 408, or the close (EndOfStreamException)
        using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(100)); // the head takes about 14 s in all
        for (int i = 0; i < head.Length && !answer.IsCompleted; i++)
        {
            try { await c.Socket.SendAsync(head.AsMemory(i, 1)); }
            catch (SocketException) { break; } // the proxy closed it
            await Task.WhenAny(answer, tick.WaitForNextTickAsync().AsTask());
        }
        int? status = null;
        try { status = (await answer).Status; }
        catch (Exception e) when (e is EndOfStreamException or SocketException) { }
        output.WriteLine($"the slow head got: {status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "the close"}");
        Assert.True(status is null or 408, $"the slow head got {status}");
        rig.AssertOriginNeverSaw(marker);
        if (status is not null) await c.AssertClosedAsync();
    }
}
