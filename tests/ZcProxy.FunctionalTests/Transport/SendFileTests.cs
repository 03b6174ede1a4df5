using System.Net;
using System.Security.Cryptography;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Tests.Transport;

[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class SendFileTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(64 * 1024 - 1)]
    [InlineData(64 * 1024)]
    [InlineData(16 * 1024 * 1024)]
    public async Task SendFile_BodyIsByteExact_AndCountedAsSendfile(long size)
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var (status, length, sha) = await GetHashedAsync(client, $"/file?size={size}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(size, length);
        Assert.Equal(BodyPattern.Sha256(size), sha);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Sendfile, size);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Copy, 0);
    }

    /// <summary>
    /// A large body sent from its event loop gives the loop up after each turn's share (LoopTurn): counted, every turn a
    /// loop thread ended sent at most LoopTurn.Bytes, and the body took several turns, so a small hit of the same loop waits
    /// behind one share, not behind the whole body.
    /// </summary>
    /// <summary>
    /// A hole's move is cancelled with the request, the flush or the connection. Its token comes from one source per
    /// connection, reset after each move, not from a linked source per response (an allocation per spliced body).
    /// </summary>
    [Fact]
    public async Task HolesOnOneConnection_GetTheirMoveTokensFromOneSource()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        for (int i = 0; i < 3; i++) Assert.Equal(1000, (await client.GetByteArrayAsync("/file-token?size=1000")).Length);
        var tokens = host.MoveTokens.ToArray();
        Assert.Equal(3, tokens.Length);
        Assert.All(tokens, token => Assert.Equal(tokens[0], token));
        Assert.False(tokens[0].IsCancellationRequested);
    }

    /// <summary>
    /// A hole whose move completes at once runs without an async frame between the sender and the move: the sender, the
    /// hole's send, the writer's flush and its move each continue in an async frame only once something waits. Before,
    /// four state machines (MoveInKernelAsync, SendHoleAsync, SendAndMoveAsync, MoveHoleAsync) ran every 64 KiB spliced
    /// body, ~1.1 % of the proxy's samples (docs/transport.md, "64 KiB responses").
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AHoleThatCompletesAtOnce_RunsWithoutAnAsyncFrame(bool ownHttp1)
    {
        await using var host = await ZeroCopyTestHost.StartAsync(ownHttp1: ownHttp1);
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var (status, length, sha) = await GetHashedAsync(client, "/file-frames?size=1000");
        Assert.Equal((HttpStatusCode.OK, 1000L, BodyPattern.Sha256(1000)), (status, length, sha));
        var frames = Assert.Single(host.HoleFrames);
        Assert.Empty(frames);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Sendfile, 1000);
    }

    /// <summary>
    /// A hole's move is linked to the request's, the flush's and the connection's tokens only once it waits: a move that
    /// runs to its end without waiting (most spliced 64 KiB bodies, resident file ranges) costs no registration (before:
    /// two, and their removal, per body), and one that waits is cancelled with them as before.
    /// </summary>
    [Fact]
    public async Task AHoleMove_IsLinkedToItsTokens_OnlyOnceItWaits()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var (status, length, sha) = await GetHashedAsync(client, "/file-token-late?size=1000");
        Assert.Equal((HttpStatusCode.OK, 1000L, BodyPattern.Sha256(1000)), (status, length, sha));
        // The body was in the socket before the move's wait: the client may have it before the move records.
        await Poll.UntilAsync(() => !host.LateLinks.IsEmpty, "the move recorded its token after its wait");
        Assert.Equal([(false, true)], host.LateLinks.ToArray());
    }

    /// <summary>
    /// A flush with nothing buffered and no hole completes at once (a response's flushes after its body: two per spliced
    /// body), without the send gate: here an interim head that the client does not read holds the gate, and the empty
    /// flush does not wait for it (before, it waited behind it).
    /// </summary>
    [Fact]
    public async Task AnEmptyFlush_CompletesAtOnce_EvenBehindAnInterimHeadBeingSent()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(host.BaseAddress.Host, host.BaseAddress.Port);
        await socket.SendAsync("GET /empty-flush-behind-interim HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray()); // then reads nothing
        await Poll.UntilAsync(() => !host.EmptyFlushes.IsEmpty, "the handler ran");
        Assert.Equal([(true, true)], host.EmptyFlushes.ToArray());
    }

    [Fact]
    public async Task LargeSendfileBody_OnTheLoop_SendsAtMostOneShareOfTheLoopPerTurn()
    {
        long size = 5 * LoopTurn.Bytes + 12345;
        IReadOnlyCollection<long> turns;
        using (var recorded = new RecordedTurns())
        {
            await using var host = await ZeroCopyTestHost.StartAsync();
            using var client = new HttpClient { BaseAddress = host.BaseAddress };
            var (status, length, sha) = await GetHashedAsync(client, $"/file?size={size}");
            Assert.Equal((HttpStatusCode.OK, size, BodyPattern.Sha256(size)), (status, length, sha));
            turns = recorded.Bytes;
        }
        Assert.NotEmpty(turns); // the body's turns, and any other test's running meanwhile: none may exceed the share
        Assert.All(turns, bytes => Assert.InRange(bytes, 1, LoopTurn.Bytes));
    }

    [Theory]
    [InlineData("/file-nolength", "Copy", 200000)] // chunked by Kestrel: the sender's copy loop
    [InlineData("/file-started", "Copy", 200000)]  // head already sent: the sender's copy loop
    public async Task SendFile_Ineligible_FallsBack_ByteExact(string path, string mechanismName, long counted)
    {
        var mechanism = Enum.Parse<BodyMechanism>(mechanismName);
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var (status, length, sha) = await GetHashedAsync(client, $"{path}?size=200000");
        Assert.Equal((HttpStatusCode.OK, 200000L, BodyPattern.Sha256(200000)), (status, length, sha));
        await CounterAssert.BodyBytesAsync(host.Metrics, mechanism, counted);
        Assert.Equal(0, host.Metrics.GetBodyBytes(BodyMechanism.Sendfile, BodyDirection.Response));
    }

    internal static async Task<(HttpStatusCode Status, long Length, string Sha)> GetHashedAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        long length = 0;
        int n;
        while ((n = await body.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            length += n;
        }
        return (response.StatusCode, length, Convert.ToHexString(hash.GetHashAndReset()));
    }
}
