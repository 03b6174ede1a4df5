using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ZcProxy.Core.Caching;

/// <summary>
/// The on-disk layout of one entry: a small header block, then the body at a 4096-aligned offset (so it can
/// be sent with sendfile from an offset and read with O_DIRECT).
/// <code>
/// "ZCCACHE1" | payload length (u32) | body offset (u64) | SHA-256 over (lengths, payload) | payload ... | body @ offset
/// </code>
/// A torn or garbled header fails the checksum; a truncated file fails the length check: both read as "no entry".
/// </summary>
internal static class EntryFile
{
    public const int Alignment = 4096;
    public const int PrefixSize = 8 + 4 + 8 + 32;
    /// <summary>Headers bigger than this are not cached (nginx's proxy_buffer_size plays this role).</summary>
    public const int MaxHeaderBlock = 64 * 1024;
    /// <summary>Room left after the header so a 304 can update the stored fields in place.</summary>
    private const int Slack = 512;
    private const int FormatVersion = 1;
    private static readonly byte[] Magic = "ZCCACHE1"u8.ToArray();

    /// <summary>The serialized header block and the body offset it asks for (given when rewriting an existing entry).</summary>
    public static byte[] Serialize(StoredResponse r, out long bodyOffset, long? existingBodyOffset = null)
    {
        var payload = Payload(r);
        long needed = PrefixSize + payload.Length;
        bodyOffset = existingBodyOffset ?? AlignUp(needed + Slack);
        if (needed > bodyOffset) return [];
        var block = new byte[needed];
        Magic.CopyTo(block, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(8), (uint)payload.Length);
        BinaryPrimitives.WriteInt64LittleEndian(block.AsSpan(12), bodyOffset);
        payload.CopyTo(block, PrefixSize);
        Checksum(block).CopyTo(block, 20);
        return block;
    }

    /// <summary>Reads and verifies an entry's header from an open file; null when the file is not a complete, intact entry.</summary>
    public static (StoredResponse Response, long BodyOffset)? Read(Microsoft.Win32.SafeHandles.SafeFileHandle file)
    {
        try
        {
            long fileLength = RandomAccess.GetLength(file);
            Span<byte> prefix = stackalloc byte[PrefixSize];
            if (RandomAccess.Read(file, prefix, 0) != PrefixSize || !prefix[..8].SequenceEqual(Magic)) return null;
            uint payloadLength = BinaryPrimitives.ReadUInt32LittleEndian(prefix[8..]);
            long bodyOffset = BinaryPrimitives.ReadInt64LittleEndian(prefix[12..]);
            if (payloadLength > MaxHeaderBlock || bodyOffset % Alignment != 0 || bodyOffset < PrefixSize + payloadLength) return null;
            var block = new byte[PrefixSize + payloadLength];
            if (RandomAccess.Read(file, block, 0) != block.Length) return null;
            if (!Checksum(block).AsSpan().SequenceEqual(block.AsSpan(20, 32))) return null;
            var response = ParsePayload(block.AsSpan(PrefixSize));
            if (response is null || fileLength != bodyOffset + response.BodyLength) return null;
            return (response, bodyOffset);
        }
        catch (Exception e) when (e is IOException or EndOfStreamException or ArgumentException or FormatException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static long AlignUp(long n) => (n + Alignment - 1) / Alignment * Alignment;

    /// <summary>SHA-256 over the two length fields and the payload (one-shot: this runs on every hit).</summary>
    private static byte[] Checksum(byte[] block)
    {
        int length = 12 + block.Length - PrefixSize;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            block.AsSpan(8, 12).CopyTo(buffer);
            block.AsSpan(PrefixSize).CopyTo(buffer.AsSpan(12));
            return SHA256.HashData(buffer.AsSpan(0, length));
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }

    private static byte[] Payload(StoredResponse r)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(FormatVersion);
            w.Write(r.Key);
            w.Write(r.Vary.Count);
            foreach (var (n, v) in r.Vary) { w.Write(n); w.Write(v); }
            w.Write(r.Status);
            w.Write(r.RequestTime.UtcTicks);
            w.Write(r.ResponseTime.UtcTicks);
            w.Write(r.BodyLength);
            w.Write(r.Headers.Count);
            foreach (var (n, v) in r.Headers) { w.Write(n); w.Write(v); }
        }
        return ms.ToArray();
    }

    private static StoredResponse? ParsePayload(ReadOnlySpan<byte> payload)
    {
        using var r = new BinaryReader(new MemoryStream(payload.ToArray()), Encoding.UTF8);
        if (r.ReadInt32() != FormatVersion) return null;
        var key = r.ReadString();
        var vary = ReadPairs(r);
        int status = r.ReadInt32();
        var requestTime = new DateTimeOffset(r.ReadInt64(), TimeSpan.Zero);
        var responseTime = new DateTimeOffset(r.ReadInt64(), TimeSpan.Zero);
        long bodyLength = r.ReadInt64();
        var headers = ReadPairs(r);
        if (status is < 200 or > 599 || bodyLength < 0) return null;
        return new StoredResponse
        {
            Key = key, Vary = vary, Status = status, RequestTime = requestTime, ResponseTime = responseTime,
            BodyLength = bodyLength, Headers = headers,
        };
    }

    private static List<(string, string)> ReadPairs(BinaryReader r)
    {
        int count = r.ReadInt32();
        if (count is < 0 or > 10_000) throw new FormatException("bad field count");
        var list = new List<(string, string)>(count);
        for (int i = 0; i < count; i++) list.Add((r.ReadString(), r.ReadString()));
        return list;
    }
}
