// A fixed byte buffer with a window of unread data: what a proxy session has read from one
// side and not yet written to the other. Asio buffers in and out, no reallocation while in
// use; an idle connection may release() the storage, which writable() allocates again.
#pragma once

#include <asio/buffer.hpp>
#include <cstddef>
#include <cstring>
#include <memory>

namespace egressd::proxy {

// The unread data is [begin, end).
class ByteWindow {
 public:
  explicit ByteWindow(size_t capacity) : data_(new char[capacity]), capacity_(capacity) {}
  // Gives the storage back while nothing is unread (an idle keep-alive connection).
  void release() {
    if (begin_ == end_) {
      data_.reset();
      begin_ = end_ = 0;
    }
  }
  const char* readPtr() const { return data_.get() + begin_; }
  char* mutableReadPtr() { return data_.get() + begin_; }
  size_t readable() const { return end_ - begin_; }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) {
      begin_ = end_ = 0;
    }
  }
  // Space after the data; compacts first when the data does not start at 0.
  asio::mutable_buffer writable() {
    if (!data_) {
      data_.reset(new char[capacity_]);
    }
    if (begin_ != 0 && end_ == capacity_) {
      std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    return asio::buffer(data_.get() + end_, capacity_ - end_);
  }
  void commit(size_t n) { end_ += n; }
  bool full() const { return begin_ == 0 && end_ == capacity_; }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace egressd::proxy
