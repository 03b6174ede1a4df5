using System.Text;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Fuzz;

/// <summary>
/// <see cref="ChunkedBodyReader"/>: the upstream's chunked body. Each input is decoded three ways: in one read, in
/// 1-byte reads, and with a prefix (body bytes that came with the head) followed by reads of 1-7 bytes. Invariants:
/// - only the documented failures escape: InvalidDataException (bad framing), EndOfStreamException (early end);
/// - the answer does not depend on how the bytes were split into reads (TCP segmentation): same outcome, same
///   decoded bytes, same count of body bytes consumed;
/// - the decoded bytes never exceed the input, the end stays the end, and they equal what an
///   independent reference decoder (<see cref="ReferenceChunkedDecoder"/>) reads from the same bytes, with the same
///   verdict (complete, truncated or invalid).
/// </summary>
internal sealed class ChunkedBodyTarget : IFuzzTarget
{
    public const int MaxLineLength = 64; // small, so the fuzzer reaches the limit often (production uses 4096)
    public const int MaxTrailerLines = 4;

    public string Name => "chunked-body";

    public IReadOnlyList<byte[]> Tokens { get; } = [.. new[]
    {
        "\r\n", "\n", "\r", "\r\n\r\n", "0\r\n\r\n", "0\r\n", ";", ";a=b", "; a=\"b c\"", " ;x", "\t;x", " ", "\t", "\0",
        "\x7f", "\xff", ":", "Trailer: x\r\n", " folded\r\n", "ffffffffffffffff", "fffffffffffffff", "7fffffffffffffff",
        "10000000000000000", "-1", "+1", "0x1", "1\r\nx\r\n", "5\r\nhello\r\n", new string('a', 70),
    }.Select(Encoding.Latin1.GetBytes)];

    public IReadOnlyList<byte[]> Seeds(Random random)
    {
        var fixedSeeds = new[]
        {
            "5\r\nhello\r\n0\r\n\r\n",
            "5;ext=1\r\nhello\r\n6 ; q=\"a b\"\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
            "A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\nleftover",
            "0\r\n\r\n",
            "000\r\n\r\n",
        };
        var seeds = fixedSeeds.Select(Encoding.Latin1.GetBytes).ToList();
        for (int i = 0; i < 64; i++) seeds.Add(Generate(random));
        return seeds;
    }

    /// <summary>A random valid chunked body: 0-8 chunks of 1-300 bytes (sizes in either hex case, sometimes with extensions), trailers, leftovers.</summary>
    private static byte[] Generate(Random random)
    {
        var body = new MemoryStream();
        void Write(string s) => body.Write(Encoding.Latin1.GetBytes(s));
        for (int chunks = random.Next(9); chunks > 0; chunks--)
        {
            int size = 1 + random.Next(300);
            var hex = size.ToString(random.Next(2) == 0 ? "x" : "X", System.Globalization.CultureInfo.InvariantCulture);
            Write(hex + (random.Next(4) == 0 ? ";name=value" : "") + "\r\n");
            var data = new byte[size];
            random.NextBytes(data);
            body.Write(data);
            Write("\r\n");
        }
        Write("0\r\n");
        for (int trailers = random.Next(3); trailers > 0; trailers--) Write($"X-T{trailers}: {random.Next()}\r\n");
        Write("\r\n");
        if (random.Next(4) == 0) Write("HTTP/1.1 200 OK\r\n");
        return body.ToArray();
    }

    public void Run(ReadOnlySpan<byte> input)
    {
        var bytes = input.ToArray();
        var seed = (int)StableHash.Of(bytes); // from the input, so a saved input replays exactly
        var whole = Decode(bytes, prefixLength: 0, _ => bytes.Length);
        var single = Decode(bytes, prefixLength: 0, _ => 1);
        var random = new Random(seed);
        var prefixed = Decode(bytes, prefixLength: random.Next(Math.Min(bytes.Length, 4096) + 1), _ => 1 + random.Next(7));

        foreach (var outcome in new[] { whole, single, prefixed })
        {
            if (outcome.Error is not (null or InvalidDataException or EndOfStreamException))
                throw new FuzzFinding($"undocumented exception {outcome.Error.GetType().Name}: {outcome.Error}");
            if (outcome.Output.Length > bytes.Length) throw new FuzzFinding($"decoded {outcome.Output.Length} bytes from {bytes.Length}");
            if (outcome.Consumed > bytes.Length || outcome.Consumed < 0) throw new FuzzFinding($"consumed {outcome.Consumed} of {bytes.Length} bytes");
        }
        Agree(whole, single, "one read", "1-byte reads");
        Agree(whole, prefixed, "one read", "a prefix and small reads");

        var reference = ReferenceChunkedDecoder.Decode(bytes, MaxLineLength, MaxTrailerLines);
        var verdict = whole.Error switch { null => ReferenceVerdict.Complete, EndOfStreamException => ReferenceVerdict.Truncated, _ => ReferenceVerdict.Invalid };
        if (verdict != reference.Verdict)
            throw new FuzzFinding($"reader says {verdict} ({whole.Error?.Message}), reference says {reference.Verdict} ({reference.Why})");
        if (verdict == ReferenceVerdict.Complete && (!whole.Output.AsSpan().SequenceEqual(reference.Output) || whole.Consumed != reference.Consumed))
            throw new FuzzFinding($"decoded {whole.Output.Length} bytes ending at {whole.Consumed}; reference {reference.Output.Length} ending at {reference.Consumed}");
    }

    private static void Agree(Outcome a, Outcome b, string how, string otherHow)
    {
        if (a.Error?.GetType() != b.Error?.GetType() || !a.Output.AsSpan().SequenceEqual(b.Output) || (a.Error is null && a.Consumed != b.Consumed))
            throw new FuzzFinding($"the answer depends on how the bytes arrive: {how}: {a}; {otherHow}: {b}");
    }

    private sealed record Outcome(byte[] Output, long Total, long Consumed, Exception? Error)
    {
        public override string ToString() => Error is null ? $"{Total} bytes, {Consumed} consumed" : $"{Error.GetType().Name}({Error.Message}) after {Output.Length} bytes";
    }

    private static Outcome Decode(byte[] input, int prefixLength, Func<int, int> readSize)
    {
        var source = new ChoppedStream(input, prefixLength, readSize);
        var reader = new ChunkedBodyReader(source, input.AsSpan(0, prefixLength), MaxLineLength, MaxTrailerLines);
        var output = new MemoryStream();
        try
        {
            long total = 0;
            while (true)
            {
                var read = reader.ReadAsync(CancellationToken.None);
                if (!read.IsCompleted) throw new FuzzFinding("the reader did not complete over a synchronous source");
                var data = read.GetAwaiter().GetResult();
                if (data.IsEmpty) break;
                output.Write(data.Span);
                total += data.Length;
            }
            var after = reader.ReadAsync(CancellationToken.None);
            if (!after.IsCompleted || !after.Result.IsEmpty) throw new FuzzFinding("data after the end");
            return new Outcome(output.ToArray(), total, source.Position - reader.LeftoverBytes, null);
        }
        catch (Exception e) when (e is not FuzzFinding)
        {
            return new Outcome(output.ToArray(), output.Length, 0, e);
        }
    }

    /// <summary>A source that hands out its bytes in reads of the sizes asked for (what TCP segmentation does).</summary>
    private sealed class ChoppedStream(byte[] data, int start, Func<int, int> readSize) : Stream
    {
        private int _position = start;
        private int _reads;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => new(Read(buffer.Span));

        public override int Read(Span<byte> buffer)
        {
            int n = Math.Min(Math.Min(buffer.Length, data.Length - _position), Math.Max(1, readSize(_reads++)));
            data.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
