using System.Security.Cryptography;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Output;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// DirectFileSource through the body sender: an O_DIRECT file read into aligned buffers and sent from them straight
/// to the client socket (a hole of the zero-copy writer), at unaligned offsets and lengths too.
/// </summary>
[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class DirectIoTests
{
    private const long Big = 3 << 20;

    [Fact]
    public async Task DirectIo_ByteExact_UnalignedTailAndOffset_CountedAsDirectIo_ThenKeepAliveReuse()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        (long Size, long Offset, long Count)[] cases =
        [
            (Big, 0, Big),                   // whole chunks
            (Big + 123, 0, Big + 123),       // an unaligned tail: a whole block is read, 123 bytes of it sent
            (Big + 123, 4097, 2_100_000),    // a range starting and ending unaligned, across chunk boundaries
            (1000, 7, 500),                  // smaller than one block
        ];
        long total = 0;
        foreach (var (size, offset, count) in cases)
        {
            await client.SendAsync(RawHttpClient.Get($"/direct?size={size}&offset={offset}&count={count}"));
            var response = await client.ReadResponseAsync();
            Assert.Equal((200, count, count, ShaOf(offset, count)), (response.Status, response.ContentLength ?? -1, response.BodyLength, response.Sha));
            total += count;
        }
        // The same connection still serves an ordinary response after the holes (keep-alive, nothing left over).
        await client.SendAsync(RawHttpClient.Get("/file?size=5000"));
        Assert.Equal(BodyPattern.Sha256(5000), (await client.ReadResponseAsync()).Sha);

        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.DirectIo, total);
        Assert.Equal(0, host.Metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response));
        Assert.Equal(1, host.Transport.OpenConnections);
        Assert.All(host.Outcomes, o => Assert.Equal(BodyResult.Complete, o.Result));
    }

    [Fact]
    public async Task DirectIo_ResponseAlreadyStarted_CopyFallback_ByteExact()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get($"/direct?size={Big + 123}&offset=4097&count=2100000&started=true"));
        var response = await client.ReadResponseAsync();
        Assert.Equal((200, 2_100_000L, ShaOf(4097, 2_100_000)), (response.Status, response.BodyLength, response.Sha));
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.DirectIo, 2_100_000);
        Assert.All(host.Outcomes, o => Assert.Equal(BodyResult.Complete, o.Result));
    }

    [Fact]
    public async Task DirectIo_FileShorterThanPromised_ClientConnectionIsAborted()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
        await client.SendAsync(RawHttpClient.Get($"/direct?size={Big + 123}&promise={Big + 300_000}"));
        await Assert.ThrowsAnyAsync<IOException>(() => client.ReadResponseAsync());
        await Poll.UntilAsync(() => host.Outcomes.Any(o => o.Path == "/direct"), "the /direct handler completes", TimeSpan.FromSeconds(10));
        Assert.Equal(BodyOutcome.SourceEnded, host.Outcomes.First(o => o.Path == "/direct").Result.Outcome);
        Assert.True(host.Metrics.GetBodyBytes(BodyMechanism.DirectIo, BodyDirection.Response) <= Big + 123);
        await Poll.UntilAsync(() => host.Transport.OpenConnections == 0, "the aborted connection ends", TimeSpan.FromSeconds(10));
    }

    private static string ShaOf(long offset, long count)
    {
        var bytes = new byte[count];
        BodyPattern.Fill(bytes, offset);
        return Convert.ToHexString(SHA256.HashData(bytes));
    }
}
