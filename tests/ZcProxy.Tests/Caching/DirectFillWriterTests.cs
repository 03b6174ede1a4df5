using System.Security.Cryptography;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Output;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// <see cref="DirectFillWriter"/> keeps <see cref="DirectFillWriter.WritesInFlight"/> O_DIRECT writes in flight on the
/// direct-I/O threads while the next buffer fills, and writes the file exactly. The threads are held (started only when
/// the test says), so what is in flight is counted, not timed: with one write in flight (the rule before) the second
/// full buffer waited for the first write and the disk sat idle while the next one filled.
/// </summary>
public sealed class DirectFillWriterTests : IDisposable
{
    private const int Buffer = AlignedBufferPool.BufferSize;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "zcproxy-fillwriter-" + Guid.NewGuid().ToString("N")[..12]);

    public DirectFillWriterTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task FullBuffers_GoToWritesAtOnce_TwoInFlight_ThenTheThirdWaitsForTheOldest()
    {
        var io = new DirectIoThreads(2, "zc-test-io", startAtFirstCall: false);
        var body = RandomNumberGenerator.GetBytes(3 * Buffer + 8192 + 1234); // three full buffers and a tail that is no multiple of 4096
        string path = Path.Combine(_dir, "entry.tmp");
        using var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write);
        var writer = DirectFillWriter.TryOpen(path, file, 0, io);
        Assert.NotNull(writer); // the test directory's file system takes O_DIRECT
        using (writer)
        {
            int at = 0;
            for (int full = 1; full <= DirectFillWriter.WritesInFlight + 1; full++)
            {
                var space = writer.SpaceAsync();
                Assert.True(space.IsCompleted, $"buffer {full} had room at once: a write in flight needs no buffer of the filling");
                var (memory, errno) = await space;
                Assert.Equal((Buffer, 0), (memory.Length, errno));
                body.AsSpan(at, Buffer).CopyTo(memory.Span);
                writer.Filled(Buffer);
                at += Buffer;
                Assert.Equal(Math.Min(full, DirectFillWriter.WritesInFlight), io.Pending); // every full buffer asked for its write at once
            }
            Assert.Equal(2, io.Pending); // the disk has two writes of this fill at once

            var next = writer.SpaceAsync(); // the third full buffer waits for the oldest write: its buffer is next
            Assert.False(next.IsCompleted, "a fourth buffer while two writes are out and one buffer is full");
            io.Start();
            var (rest, failed) = await next;
            Assert.Equal(0, failed);
            body.AsSpan(at).CopyTo(rest.Span);
            writer.Filled(body.Length - at);
            Assert.Equal(0, await writer.FlushAsync());
            Assert.Equal(0, io.Pending);
        }
        file.Dispose();
        Assert.Equal(body, await File.ReadAllBytesAsync(path)); // the file is the body exactly: nothing padded
    }
}
