using System.Text;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Tests.Upstream;

public class ChunkedBodyReaderTests
{
    private static async Task<(string Body, int Leftover)> DecodeAsync(string wire, int readSize = 3)
    {
        var reader = new ChunkedBodyReader(new TrickleStream(Encoding.Latin1.GetBytes(wire), readSize));
        var output = new MemoryStream();
        for (var data = await reader.ReadAsync(CancellationToken.None); !data.IsEmpty; data = await reader.ReadAsync(CancellationToken.None))
            output.Write(data.Span);
        Assert.True((await reader.ReadAsync(CancellationToken.None)).IsEmpty, "the end stays the end");
        return (Encoding.Latin1.GetString(output.ToArray()), reader.LeftoverBytes);
    }

    [Theory]
    [InlineData("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world")]
    [InlineData("A;name=value\r\n0123456789\r\n0\r\n\r\n", "0123456789")]
    [InlineData("a \r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n", "0123456789")]
    [InlineData("0\r\n\r\n", "")]
    [InlineData("000\r\n\r\n", "")]
    public async Task Decode_Valid(string wire, string expected)
    {
        foreach (var readSize in new[] { 1, 2, 7, 4096 })
        {
            var (body, leftover) = await DecodeAsync(wire, readSize);
            Assert.Equal(expected, body);
            Assert.Equal(0, leftover);
        }
    }

    [Fact]
    public async Task Decode_BytesAfterTheBody_AreReportedAsLeftover()
    {
        var (body, leftover) = await DecodeAsync("1\r\nx\r\n0\r\n\r\nHTTP", readSize: 4096);
        Assert.Equal("x", body);
        Assert.Equal(4, leftover);
    }

    [Theory]
    [InlineData("\r\nhello\r\n0\r\n\r\n")]               // missing size
    [InlineData("-5\r\nhello\r\n0\r\n\r\n")]             // sign
    [InlineData("0x5\r\nhello\r\n0\r\n\r\n")]            // prefix
    [InlineData("5 x\r\nhello\r\n0\r\n\r\n")]            // junk after size
    [InlineData("1000000000000000\r\n")]                 // 16 hex digits: over the limit
    [InlineData("5\r\nhelloX\r\n0\r\n\r\n")]             // data longer than the size
    [InlineData("5\nhello\r\n0\r\n\r\n")]                // bare LF
    [InlineData("5;a=\u0001\r\nhello\r\n0\r\n\r\n")]     // control character in extension
    [InlineData("0\r\n folded: trailer\r\n\r\n")]        // obs-fold in trailer
    [InlineData("0\r\nnocolon\r\n\r\n")]                 // malformed trailer
    public async Task Decode_Malformed_Throws(string wire)
        => await Assert.ThrowsAsync<InvalidDataException>(() => DecodeAsync(wire));

    [Theory]
    [InlineData("5\r\nhel")]
    [InlineData("5\r\nhello\r\n")]
    [InlineData("5\r\nhello\r\n0\r\n")]
    [InlineData("")]
    public async Task Decode_Truncated_ThrowsEndOfStream(string wire)
        => await Assert.ThrowsAsync<EndOfStreamException>(() => DecodeAsync(wire));

    [Fact]
    public async Task Decode_EndlessSizeLine_IsBounded()
        => await Assert.ThrowsAsync<InvalidDataException>(() => DecodeAsync("1" + new string(' ', 10000) + "\r\n", readSize: 512));

    /// <summary>
    /// Found by fuzzing (tests/ZcProxy.Fuzz): a line over the limit was accepted when it arrived in one read and
    /// refused when it arrived in pieces, and a line of exactly the limit was refused in pieces. The limit now holds
    /// however the bytes are segmented: the line's content without CRLF, at most maxLineLength bytes.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(4096)]
    public async Task Decode_LineLimit_DoesNotDependOnHowTheBytesArrive(int readSize)
    {
        var atLimit = "5;" + new string('e', 62) + "\r\nhello\r\n0\r\n\r\n";     // 64-byte size line: allowed
        var overLimit = "5;" + new string('e', 63) + "\r\nhello\r\n0\r\n\r\n";   // 65 bytes: refused
        Assert.Equal("hello", await Decode(atLimit));
        await Assert.ThrowsAsync<InvalidDataException>(() => Decode(overLimit));
        await Assert.ThrowsAsync<InvalidDataException>(() => Decode("0\r\nX-Long: " + new string('t', 60) + "\r\n\r\n"));

        async Task<string> Decode(string wire)
        {
            var reader = new ChunkedBodyReader(new TrickleStream(Encoding.Latin1.GetBytes(wire), readSize), maxLineLength: 64);
            var output = new MemoryStream();
            for (var data = await reader.ReadAsync(CancellationToken.None); !data.IsEmpty; data = await reader.ReadAsync(CancellationToken.None))
                output.Write(data.Span);
            return Encoding.Latin1.GetString(output.ToArray());
        }
    }

    /// <summary>Hands out at most <c>readSize</c> bytes per read, to exercise every split point.</summary>
    private sealed class TrickleStream(byte[] data, int readSize) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => base.ReadAsync(buffer[..Math.Min(buffer.Length, readSize)], cancellationToken);
    }
}
