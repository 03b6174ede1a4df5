using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>
/// Deterministic bodies of any length: a pseudo-random block whose length (1 MiB + 7) is coprime to every buffer
/// size on the path, so a lost, doubled or reordered piece changes the sha256.
/// </summary>
public static class BodyPattern
{
    private const int Period = (1 << 20) + 7;
    private static readonly byte[] Block = MakeBlock();

    private static byte[] MakeBlock()
    {
        var block = new byte[Period];
        new Random(20261130).NextBytes(block);
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

    /// <summary>The first <paramref name="length"/> bytes of the body, as pieces that share one block (no copies).</summary>
    public static IEnumerable<ReadOnlyMemory<byte>> Pieces(long length)
    {
        for (long offset = 0; offset < length;)
        {
            int n = (int)Math.Min(Block.Length, length - offset);
            yield return Block.AsMemory(0, n);
            offset += n;
        }
    }

    public static string Sha256(long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var piece in Pieces(length)) hash.AppendData(piece.Span);
        return Convert.ToHexString(hash.GetHashAndReset());
    }

    public static async Task<(string Sha256, long Length)> HashStreamAsync(Stream stream)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            total += n;
        }
        return (Convert.ToHexString(hash.GetHashAndReset()), total);
    }

    public static string WriteFile(string directory, long length)
    {
        var path = Path.Combine(directory, $"body-{length}.bin");
        using var file = File.Create(path);
        foreach (var piece in Pieces(length)) file.Write(piece.Span);
        return path;
    }

    /// <summary>Origin endpoints: /bytes/{n} (Content-Length), /chunked/{n} (no length: chunked), /status/{code}, /echo (sha256 of the request body).</summary>
    public static void MapEndpoints(WebApplication app)
    {
        app.MapMethods("/bytes/{n:long}", ["GET", "HEAD"], async (HttpContext context, long n) =>
        {
            context.Response.ContentLength = n;
            context.Response.ContentType = "application/octet-stream";
            if (HttpMethods.IsHead(context.Request.Method)) return;
            foreach (var piece in Pieces(n)) await context.Response.Body.WriteAsync(piece);
        });
        app.MapGet("/chunked/{n:long}", async (HttpContext context, long n) =>
        {
            foreach (var piece in Pieces(n))
                for (int i = 0; i < piece.Length; i += 50_000)
                {
                    await context.Response.Body.WriteAsync(piece.Slice(i, Math.Min(50_000, piece.Length - i)));
                    await context.Response.Body.FlushAsync();
                }
        });
        app.MapGet("/status/{code:int}", (HttpContext context, int code) =>
        {
            context.Response.StatusCode = code;
            if (code == 304) context.Response.Headers.ETag = "\"v1\"";
        });
        app.MapPost("/echo", async (HttpContext context) =>
        {
            var (sha, length) = await HashStreamAsync(context.Request.Body);
            return Results.Text($"{length} {sha}");
        });
    }
}
