fn main() {
    ci_push::main()
}
