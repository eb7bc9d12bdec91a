// edgematte_mask: run an edgematte OpenVINO IR on one image and write the 8-bit mask.
//
//   edgematte_mask MODEL.xml IMAGE.ppm MASK.pgm [DEVICE]
//
// The IR takes u8 BGR NHWC pixels at its own input size (edgematte export builds type conversion, channel order,
// mean and scale into it), so this program only reads the image, resizes it to the IR's size (bilinear with
// half-pixel centres, as OpenCV's INTER_LINEAR), runs it, resizes the output back and writes it. Images are binary
// PPM (P6) or PGM (P5), 8-bit: no image library is needed on the box (convert with any tool, e.g.
// `python -c "import cv2; cv2.imwrite('in.ppm', cv2.imread('photo.jpg'))"`). For the trimap net the mask is the
// foreground channel. At the IR's own input size the mask equals the Python runtime's within 1/255; at other
// sizes the Python runtime shrinks with area interpolation, so edges can differ by a few levels.
#include <openvino/openvino.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Image {
    int width = 0, height = 0, channels = 0;
    std::vector<float> data;  // HWC, values 0..255
};

int read_int(std::istream& in) {
    int c = in.peek();
    while (c == '#' || std::isspace(c)) {
        if (c == '#') {
            std::string comment;
            std::getline(in, comment);
        } else {
            in.get();
        }
        c = in.peek();
    }
    int value = -1;
    if (!(in >> value)) throw std::runtime_error("malformed PNM header");
    return value;
}

Image read_pnm(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    std::string magic;
    in >> magic;
    if (magic != "P6" && magic != "P5") throw std::runtime_error(path + ": not a binary PPM (P6) or PGM (P5) image");
    Image image;
    image.channels = magic == "P6" ? 3 : 1;
    image.width = read_int(in);
    image.height = read_int(in);
    const int maxval = read_int(in);
    in.get();  // the single whitespace after maxval
    if (image.width <= 0 || image.height <= 0 || maxval != 255)
        throw std::runtime_error(path + ": only 8-bit images with a positive size are supported");
    if (static_cast<long long>(image.width) * image.height > 200LL * 1000 * 1000)
        throw std::runtime_error(path + ": image too large");
    std::vector<unsigned char> raw(static_cast<size_t>(image.width) * image.height * image.channels);
    in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
    if (in.gcount() != static_cast<std::streamsize>(raw.size())) throw std::runtime_error(path + ": truncated");
    image.data.assign(raw.begin(), raw.end());
    return image;
}

void write_pgm(const std::string& path, int width, int height, const std::vector<unsigned char>& pixels) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) throw std::runtime_error(path + ": cannot write");
        out << "P5\n" << width << " " << height << "\n255\n";
        out.write(reinterpret_cast<const char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
        if (!out) throw std::runtime_error(path + ": write failed");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename into place");
}

// Bilinear resize with half-pixel centres (OpenCV INTER_LINEAR), HWC float.
std::vector<float> resize(const std::vector<float>& src, int sw, int sh, int c, int dw, int dh) {
    if (sw == dw && sh == dh) return src;
    std::vector<float> dst(static_cast<size_t>(dw) * dh * c);
    const float sx = static_cast<float>(sw) / dw, sy = static_cast<float>(sh) / dh;
    for (int y = 0; y < dh; ++y) {
        float fy = std::max(0.0f, (y + 0.5f) * sy - 0.5f);
        int y0 = std::min(static_cast<int>(fy), sh - 1), y1 = std::min(y0 + 1, sh - 1);
        float wy = fy - y0;
        for (int x = 0; x < dw; ++x) {
            float fx = std::max(0.0f, (x + 0.5f) * sx - 0.5f);
            int x0 = std::min(static_cast<int>(fx), sw - 1), x1 = std::min(x0 + 1, sw - 1);
            float wx = fx - x0;
            for (int k = 0; k < c; ++k) {
                auto at = [&](int yy, int xx) { return src[(static_cast<size_t>(yy) * sw + xx) * c + k]; };
                float top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx;
                float bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx;
                dst[(static_cast<size_t>(y) * dw + x) * c + k] = top * (1 - wy) + bottom * wy;
            }
        }
    }
    return dst;
}

int run(const std::string& model_path, const std::string& image_path, const std::string& mask_path,
        const std::string& device) {
    ov::Core core;
    std::shared_ptr<ov::Model> model = core.read_model(model_path);
    const ov::Shape in_shape = model->input().get_shape();  // [1, H, W, 3], u8 BGR
    if (in_shape.size() != 4 || in_shape[0] != 1 || in_shape[3] != 3 ||
        model->input().get_element_type() != ov::element::u8)
        throw std::runtime_error(model_path + ": expected an edgematte IR taking u8 [1,H,W,3]");
    const int net_h = static_cast<int>(in_shape[1]), net_w = static_cast<int>(in_shape[2]);
    ov::CompiledModel compiled = core.compile_model(model, device);
    ov::InferRequest request = compiled.create_infer_request();

    Image image = read_pnm(image_path);
    std::vector<float> bgr(static_cast<size_t>(image.width) * image.height * 3);
    for (size_t i = 0, n = static_cast<size_t>(image.width) * image.height; i < n; ++i) {
        for (int k = 0; k < 3; ++k)  // PPM is RGB, the IR takes BGR; gray fills all three
            bgr[i * 3 + k] = image.channels == 3 ? image.data[i * 3 + (2 - k)] : image.data[i];
    }
    std::vector<float> net = resize(bgr, image.width, image.height, 3, net_w, net_h);
    ov::Tensor input(ov::element::u8, in_shape);
    auto* px = input.data<uint8_t>();
    for (size_t i = 0; i < net.size(); ++i)
        px[i] = static_cast<uint8_t>(std::lround(std::min(255.0f, std::max(0.0f, net[i]))));
    request.set_input_tensor(input);
    request.infer();

    const ov::Tensor output = request.get_output_tensor();
    const ov::Shape out_shape = output.get_shape();  // [1, C, h, w]
    if (out_shape.size() != 4) throw std::runtime_error(model_path + ": expected a [1,C,H,W] output");
    const size_t channels = out_shape[1], oh = out_shape[2], ow = out_shape[3];
    const float* prob = output.data<const float>() + (channels - 1) * oh * ow;  // foreground channel
    std::vector<float> alpha(prob, prob + oh * ow);
    std::vector<float> full = resize(alpha, static_cast<int>(ow), static_cast<int>(oh), 1, image.width, image.height);
    std::vector<unsigned char> mask(full.size());
    for (size_t i = 0; i < full.size(); ++i)
        mask[i] = static_cast<unsigned char>(std::lround(std::min(1.0f, std::max(0.0f, full[i])) * 255.0f));
    write_pgm(mask_path, image.width, image.height, mask);
    std::cout << "wrote " << mask_path << " (" << image.width << "x" << image.height << ", network " << net_w << "x"
              << net_h << " on " << device << ")\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4 || argc > 5) {
        std::cerr << "usage: edgematte_mask MODEL.xml IMAGE.ppm MASK.pgm [DEVICE]\n";
        return 2;
    }
    try {
        return run(argv[1], argv[2], argv[3], argc == 5 ? argv[4] : "CPU");
    } catch (const std::exception& error) {
        std::string text = error.what();
        std::cerr << "edgematte_mask: " << text.substr(0, text.find('\n')) << "\n";
        return 1;
    }
}
