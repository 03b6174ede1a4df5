using System.Security.Cryptography;

namespace ZcProxy.Tests.Transport;

/// <summary>Deterministic body bytes (a pseudo-random block repeated at an odd period) and their sha256.</summary>
public static class BodyPattern
{
    private const int Period = (1 << 20) + 7;
    private static readonly byte[] Block = MakeBlock();

    private static byte[] MakeBlock()
    {
        var block = new byte[Period];
        new Random(12345).NextBytes(block);
        return block;
    }

    /// <summary>Fills <paramref name="destination"/> with the bytes at <paramref name="position"/> of an endless body.</summary>
    public static void Fill(Span<byte> destination, long position)
    {
        int offset = (int)(position % Period);
        while (!destination.IsEmpty)
        {
            int n = Math.Min(destination.Length, Period - offset);
            Block.AsSpan(offset, n).CopyTo(destination);
            destination = destination[n..];
            offset = 0;
        }
    }

    public static string Sha256(long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        for (long done = 0; done < length;)
        {
            int n = (int)Math.Min(buffer.Length, length - done);
            Fill(buffer.AsSpan(0, n), done);
            hash.AppendData(buffer, 0, n);
            done += n;
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    }

    public static string WriteFile(string directory, long length)
    {
        var path = Path.Combine(directory, $"body-{length}.bin");
        using var file = File.Create(path);
        var buffer = new byte[1 << 20];
        for (long done = 0; done < length;)
        {
            int n = (int)Math.Min(buffer.Length, length - done);
            Fill(buffer.AsSpan(0, n), done);
            file.Write(buffer, 0, n);
            done += n;
        }
        return path;
    }
}
