using System.Net;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Tests.Transport;

[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class SpliceTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(64 * 1024 - 1)]
    [InlineData(64 * 1024)]
    [InlineData(16 * 1024 * 1024)]
    public async Task Splice_BodyIsByteExact_AndCountedAsSplice(long size)
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var (status, length, sha) = await SendFileTests.GetHashedAsync(client, $"/splice?size={size}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(size, length);
        Assert.Equal(BodyPattern.Sha256(size), sha);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Splice, size);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Copy, 0);
    }

    /// <summary>
    /// A spliced body moved from its event loop (as the forwarder's, and a cache fill's, on a MISS) gives the loop up after
    /// each turn's share (LoopTurn), as sendfile bodies do: every turn a loop thread ended sent at most LoopTurn.Bytes, and
    /// the turns add up to the body, so a fast upstream and a fast client do not hold the loop for the whole body.
    /// </summary>
    [Fact]
    public async Task LargeSplicedBody_OnTheLoop_SendsAtMostOneShareOfTheLoopPerTurn()
    {
        long size = 5 * LoopTurn.Bytes + 12345;
        IReadOnlyCollection<long> turns;
        using (var recorded = new RecordedTurns())
        {
            await using var host = await ZeroCopyTestHost.StartAsync();
            using var client = new HttpClient { BaseAddress = host.BaseAddress };
            var (status, length, sha) = await SendFileTests.GetHashedAsync(client, $"/splice?size={size}&onLoop=true");
            Assert.Equal((HttpStatusCode.OK, size, BodyPattern.Sha256(size)), (status, length, sha));
            await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Splice, size);
            turns = recorded.Bytes;
        }
        // Every byte of the body left in some turn of its loop; all but the last turn (which ends with the move, not by a
        // yield or a wait) were recorded. Any other test's turns may be there too.
        Assert.True(turns.Sum() >= size - LoopTurn.Bytes, $"turns recorded {turns.Sum()} bytes of a {size}-byte body");
        Assert.All(turns, bytes => Assert.InRange(bytes, 1, LoopTurn.Bytes));
    }

    /// <summary>
    /// A body whose splice waits for its source (the upstream sends the first MiB, then holds the rest until the client
    /// has it), sent from the connection's event loop as the forwarder does, resumes the request on that loop: the hole
    /// runs outside Kestrel's flush, whose pending flush would complete on the thread pool. Byte-exact, and the
    /// connection carries the next request.
    /// </summary>
    [Fact]
    public async Task Splice_ThatWaits_ResumesOnTheLoop_ByteExact()
    {
        const long size = 4 << 20, held = 1 << 20;
        await using var host = await ZeroCopyTestHost.StartAsync();
        host.Source.HoldAfter = held;
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        Assert.Equal((size, BodyPattern.Sha256(size)), await GetReleasingAsync(client, $"/splice?size={size}&onLoop=true", host.Source, held));
        Assert.True(host.Source.Release.Task.IsCompleted, "the body was not held: nothing waited");
        // The client may have the last byte before the handler goes on.
        await Poll.UntilAsync(() => !host.SpliceEndedOnLoop.IsEmpty, "the splice handler to go on after its body");
        Assert.Equal([true], host.SpliceEndedOnLoop);
        // Keep-alive: the same connection serves the next body.
        var (status, length2, sha) = await SendFileTests.GetHashedAsync(client, "/splice?size=65536");
        Assert.Equal((HttpStatusCode.OK, 65536L, BodyPattern.Sha256(65536)), (status, length2, sha));
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Splice, size + 65536);
    }

    /// <summary>
    /// The body bytes that came with the upstream's head in the head's one read (the prefix) leave with the response head
    /// in one send, counted as copied; the rest is spliced. The prefix may be the whole body. Byte-exact, twice on one
    /// keep-alive connection.
    /// </summary>
    [Theory]
    [InlineData(100, 100)]
    [InlineData(64 * 1024, 1)]
    [InlineData(64 * 1024, 7000)]
    public async Task Splice_PrefixFromTheHeadRead_LeavesWithTheHead_RestSpliced(long size, long prefix)
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        host.Source.Head = $"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n";
        host.Source.HoldAfter = prefix; // the rest comes once the client has the prefix: the head's read cannot take it
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var path = $"/splice?size={size}&head=true&onLoop=true";
        Assert.Equal((size, BodyPattern.Sha256(size)), await GetReleasingAsync(client, path, host.Source, prefix));
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Copy, prefix);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Splice, size - prefix);
        // Released now: the second head's read may take more of its body along.
        Assert.Equal((size, BodyPattern.Sha256(size)), await GetReleasingAsync(client, path, host.Source, prefix));
    }

    /// <summary>GETs <paramref name="path"/>, releasing the source's held bytes once the first <paramref name="held"/> body bytes arrived.</summary>
    private static async Task<(long Length, string Sha)> GetReleasingAsync(HttpClient client, string path, SocketSource source, long held)
    {
        using var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync();
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        long length = 0;
        for (int n; (n = await body.ReadAsync(buffer)) > 0;)
        {
            hash.AppendData(buffer, 0, n);
            length += n;
            // Everything sent before the hold has arrived: the splice is waiting for its source now.
            if (length == held) source.Release.TrySetResult();
        }
        return (length, Convert.ToHexString(hash.GetHashAndReset()));
    }
}
