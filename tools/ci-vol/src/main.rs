fn main() {
    ci_vol::main()
}
